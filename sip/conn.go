package sip

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"
)

// packetConn runs admission on every datagram before sipgo reads it.
// sipgo reads each listener from one goroutine, so buf needs no lock.
type packetConn struct {
	net.PacketConn
	s   *Server
	buf []byte
	rt  *rtReader // Server.Realtime: set by the first read (realtime_linux.go)
	out *directSender
}

// WriteTo sends past the net package's per-socket write lock where it can
// (send_linux.go).
func (c *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.out != nil {
		if n, ok, err := c.out.send(b, addr); ok {
			return n, err
		}
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *packetConn) Close() error {
	if c.out != nil {
		c.out.close()
	}
	return c.PacketConn.Close()
}

func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		var n int
		var addr net.Addr
		var err error
		if c.s.Realtime > 0 {
			n, addr, err = c.readRealtime(c.buf)
		} else {
			n, addr, err = c.PacketConn.ReadFrom(c.buf)
		}
		if err != nil {
			c.releaseRealtime() // sipgo stops reading this socket
			return 0, addr, err
		}
		data := c.buf[:n]
		if len(bytes.Trim(data, "\r\n\x00 ")) == 0 {
			continue // keepalive
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		if n > len(b) {
			// More than sipgo reads at once (sip.TransportBufferReadSize):
			// handing it over would cut it. Stage 1 on UDP is silence.
			continue
		}
		v, resp := c.s.admitFrom(data, ua.AddrPort(), "UDP", func(b []byte) { c.WriteTo(b, addr) })
		switch v {
		case pass:
			if len(resp) > len(b) {
				continue // grown past sipgo's buffer (rport): as stage 1
			}
			return copy(b, resp), addr, nil
		case reply, closeConn:
			if resp != nil {
				c.WriteTo(resp, addr)
			}
		}
	}
}

// listener wraps accepted TCP connections with stream admission.
type listener struct {
	net.Listener
	s *Server
}

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	src := netip.AddrPort{}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		src = ta.AddrPort()
	}
	return &streamConn{Conn: c, s: l.s, src: src}, nil
}

// streamConn frames the TCP byte stream into messages (RFC 3261 §18.3:
// headers, then Content-Length bytes), runs admission on each, and lets
// sipgo read only the admitted ones. sipgo reads each connection from one
// goroutine; writes here go straight to the socket, which is safe next to
// sipgo's own.
type streamConn struct {
	net.Conn
	s      *Server
	src    netip.AddrPort
	in     []byte // received, not yet framed
	out    []byte // admitted, not yet read by sipgo
	chunk  []byte // read buffer
	closed bool   // framing lost or answered with close: end the stream
}

func (c *streamConn) Read(b []byte) (int, error) {
	for len(c.out) == 0 {
		if c.closed {
			c.drain()
			return 0, io.EOF
		}
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	n := copy(b, c.out)
	c.out = c.out[n:]
	return n, nil
}

// next handles the first thing buffered (a message, a keepalive, broken
// framing), or reads more.
func (c *streamConn) next() error {
	n, kind := frame(c.in, c.s.MaxMessage)
	switch kind {
	case frameNeedMore:
		return c.fill()
	case framePing:
		c.Conn.Write([]byte("\r\n")) // RFC 5626 §3.5.1 pong
	case frameCRLF:
	case frameMessage, frameUnsized:
		msg := c.in[:n]
		v, resp := c.s.admitFrom(msg, c.src, "TCP", func(b []byte) { c.Conn.Write(b) })
		if kind == frameUnsized {
			// A stream needs Content-Length to find where the next message
			// starts (RFC 3261 §18.3, §20.14); taking it as 0 is a guess,
			// so answer this one and close.
			if v == pass {
				resp = rawAnswer(msg, 400, "Missing Content-Length")
			}
			v = closeConn
		}
		switch v {
		case pass:
			c.out = append(c.out[:0], resp...)
		case reply:
			c.Conn.Write(resp)
		case closeConn:
			if resp != nil {
				c.Conn.Write(resp)
			}
			c.closed = true
		}
	case frameBad:
		if r := rawAnswer(c.in, 400, "Bad Content-Length"); r != nil {
			c.Conn.Write(r)
		}
		c.closed = true
		return nil
	case frameTooLarge:
		if r := rawAnswer(c.in, 413, "Request Entity Too Large"); r != nil {
			c.Conn.Write(r)
		}
		c.closed = true
		return nil
	}
	c.in = append(c.in[:0], c.in[n:]...)
	return nil
}

// drain reads away what the peer still sends (at most 64 KiB, for at most
// a second) before sipgo closes the connection: a close with unread input
// resets the connection, and the peer may then lose the answer just
// written.
func (c *streamConn) drain() {
	c.Conn.SetReadDeadline(time.Now().Add(time.Second))
	io.CopyN(io.Discard, c.Conn, 64<<10)
}

// fill reads more of the stream. When the peer ends it inside a message
// (a Content-Length past the end, no empty line after the headers), that
// message gets a 400 if it can be addressed.
func (c *streamConn) fill() error {
	if c.chunk == nil {
		c.chunk = make([]byte, 32<<10)
	}
	m, err := c.Conn.Read(c.chunk)
	c.in = append(c.in, c.chunk[:m]...)
	if errors.Is(err, io.EOF) && len(bytes.Trim(c.in, "\r\n")) > 0 {
		if r := rawAnswer(c.in, 400, "Incomplete Message"); r != nil {
			c.Conn.Write(r)
		}
	}
	return err
}

type frameKind int

const (
	frameNeedMore frameKind = iota
	framePing               // CRLFCRLF between messages
	frameCRLF               // a lone CRLF between messages
	frameMessage            // a whole message of n bytes
	frameUnsized            // a message of n bytes without Content-Length (body taken as empty)
	frameBad                // framing lost (bad Content-Length): close
	frameTooLarge           // over the size limit: close
)

// frame finds the first message in buf, given the size limit max.
func frame(buf []byte, max int) (int, frameKind) {
	if bytes.HasPrefix(buf, []byte("\r\n\r\n")) {
		return 4, framePing
	}
	if bytes.HasPrefix(buf, []byte("\r\n")) {
		if len(buf) < 4 && bytes.Equal(buf, []byte("\r\n\r")[:len(buf)]) {
			return 0, frameNeedMore
		}
		return 2, frameCRLF
	}
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		if len(buf) > max {
			return 0, frameTooLarge
		}
		return 0, frameNeedMore
	}
	if end+4 > max {
		return 0, frameTooLarge
	}
	cl, present, ok := contentLength(buf[:end+2])
	if !ok {
		return 0, frameBad
	}
	if cl > max-end-4 {
		return 0, frameTooLarge
	}
	total := end + 4 + cl
	if len(buf) < total {
		return 0, frameNeedMore
	}
	if !present {
		return total, frameUnsized
	}
	return total, frameMessage
}

// contentLength reads Content-Length (or l) from a header block: present
// is false when there is none; not ok when a value is not 1*DIGIT or two
// values differ. Values beyond any message size come back as 1<<31-1.
func contentLength(head []byte) (n int, present, ok bool) {
	ok = true
	eachHeader(head, func(name, value string) {
		if !ok || canonicalName(name) != "Content-Length" {
			return
		}
		v, good := digits(value)
		if !good || (present && v != n) {
			ok = false
			return
		}
		n, present = v, true
	})
	if !ok {
		return 0, false, false
	}
	return n, present, true
}

// digits parses 1*DIGIT, saturating at 1<<31-1.
func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < (1<<31-1)/10 {
			n = n*10 + int(c-'0')
		} else {
			n = 1<<31 - 1
		}
	}
	return n, true
}

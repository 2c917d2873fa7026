package sip

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// packetConn runs admission on every datagram before sipgo reads it.
// sipgo reads each listener from one goroutine, so buf needs no lock.
type packetConn struct {
	net.PacketConn
	s   *Server
	buf []byte
}

func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(c.buf)
		if err != nil {
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
		v, resp := c.s.admit(data, ua.AddrPort())
		switch v {
		case pass:
			return copy(b, data), addr, nil
		case reply, closeConn:
			c.PacketConn.WriteTo(resp, addr)
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
// sipgo read only the admitted ones.
type streamConn struct {
	net.Conn
	s      *Server
	src    netip.AddrPort
	in     []byte // received, not yet framed
	out    []byte // admitted, not yet read by sipgo
	closed bool
}

func (c *streamConn) Read(b []byte) (int, error) {
	var chunk [32 << 10]byte
	for len(c.out) == 0 {
		if c.closed {
			return 0, io.EOF
		}
		n, kind := frame(c.in, c.s.MaxMessage)
		switch kind {
		case frameNeedMore:
			m, err := c.Conn.Read(chunk[:])
			if m > 0 {
				c.in = append(c.in, chunk[:m]...)
			}
			if err != nil {
				return 0, err
			}
			continue
		case framePing:
			c.Conn.Write([]byte("\r\n")) // RFC 5626 §3.5.1 pong
		case frameCRLF:
		case frameMessage:
			v, resp := c.s.admit(c.in[:n], c.src)
			switch v {
			case pass:
				c.out = append(c.out[:0], c.in[:n]...)
			case reply:
				c.Conn.Write(resp)
			case closeConn:
				c.Conn.Write(resp)
				c.closed = true
			}
		case frameBad:
			if r := rawBadRequest(c.in); r != nil {
				c.Conn.Write(r)
			}
			c.closed = true
			continue
		case frameTooLarge:
			if r := rawBadRequest(c.in); r != nil {
				c.Conn.Write(bytes.Replace(r, []byte("400 Bad Request"), []byte("413 Request Entity Too Large"), 1))
			}
			c.closed = true
			continue
		}
		c.in = append(c.in[:0], c.in[n:]...)
	}
	n := copy(b, c.out)
	c.out = c.out[n:]
	return n, nil
}

type frameKind int

const (
	frameNeedMore frameKind = iota
	framePing               // CRLFCRLF between messages
	frameCRLF               // a lone CRLF between messages
	frameMessage            // a whole message of n bytes
	frameBad                // framing lost (bad Content-Length): close
	frameTooLarge           // over the size limit: close
)

// frame finds the first message in buf.
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
	cl, ok := contentLength(buf[:end])
	if !ok {
		return 0, frameBad
	}
	total := end + 4 + cl
	if total > max {
		return 0, frameTooLarge
	}
	if len(buf) < total {
		return 0, frameNeedMore
	}
	return total, frameMessage
}

// contentLength reads Content-Length (or l) from a header block: 0 when
// absent; not ok when negative, not a number, or given twice differently.
func contentLength(head []byte) (int, bool) {
	val := -1
	for _, line := range strings.Split(string(head), "\r\n")[1:] {
		name, v, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "content-length" && name != "l" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 || (val >= 0 && n != val) {
			return 0, false
		}
		val = n
	}
	if val < 0 {
		return 0, true
	}
	return val, true
}

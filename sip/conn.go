package sip

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// listener wraps accepted TCP connections with stream admission. Accept
// never hands sipgo a failure it can recover from: sipgo's accept loop
// returns on the first error, and Serve would then close every listener.
type listener struct {
	net.Listener
	s         *Server
	done      chan struct{} // closed by Close: a retry wait ends
	closeOnce sync.Once
}

func newListener(ln net.Listener, s *Server) *listener {
	return &listener{Listener: ln, s: s, done: make(chan struct{})}
}

// Accept returns the next connection within the caps. A failed accept
// (out of descriptors, say) is retried after 5 ms, doubling up to 1 s;
// a connection over MaxConns or MaxConnsPerSource is closed at once,
// unanswered.
func (l *listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !retryAccept(err) {
				return nil, err
			}
			delay = min(max(2*delay, acceptRetryMin), acceptRetryMax)
			l.s.acceptFailed(l.Addr(), err, delay)
			t := time.NewTimer(delay)
			select {
			case <-l.done:
				t.Stop()
				return nil, net.ErrClosed
			case <-t.C:
			}
			continue
		}
		delay = 0
		src := netip.AddrPort{}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			src = ta.AddrPort()
		}
		key := sourceKey(src.Addr())
		if limit, open := l.s.conns.open(key, src, l.s.MaxConns, l.s.MaxConnsPerSource); limit != "" {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset: no TIME_WAIT left per refused connection
			}
			c.Close()
			l.s.connRefused(src, limit, open)
			continue
		}
		return &streamConn{Conn: c, s: l.s, src: src, key: key, accepted: time.Now()}, nil
	}
}

func (l *listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// streamConn frames the TCP byte stream into messages (RFC 3261 §18.3:
// headers, then Content-Length bytes), runs admission on each, and lets
// sipgo read only the admitted ones. sipgo reads each connection from one
// goroutine; writes here go straight to the socket, which is safe next to
// sipgo's own.
//
// Its reads have deadlines: a message must arrive whole within
// TCPReadTimeout of its first byte (the first message, of the accept),
// and between messages the connection may stay idle for TCPIdleTimeout,
// or for MaxExpires once a REGISTER on it was answered 200 (the phone
// needs it for calls until its binding expires). CRLF keepalives count as
// traffic (RFC 5626 §3.5.1). A connection past its deadline reads as
// ended, and sipgo closes it.
type streamConn struct {
	net.Conn
	s      *Server
	src    netip.AddrPort
	key    netip.Addr // its slot in s.conns
	in     []byte     // received, not yet framed
	out    []byte     // admitted, not yet read by sipgo
	chunk  []byte     // read buffer
	closed bool       // framing lost or answered with close: end the stream

	accepted   time.Time   // when Accept returned it
	framed     bool        // a message or keepalive was framed
	idleSince  time.Time   // when the last one was framed
	msgStart   time.Time   // when the message buffered in in began (zero: none)
	armed      time.Time   // the read deadline set on Conn (zero: none)
	registered atomic.Bool // a REGISTER on it was answered 200
	closeOnce  sync.Once
}

// Close gives back the connection's slot and closes it (in that order:
// a peer that sees the end finds the slot free).
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() { c.s.conns.close(c.key, c.src) })
	return c.Conn.Close()
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
		v, resp := c.s.admitFrom(msg, c.src, "TCP", c.respond)
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
	c.framed, c.idleSince = true, time.Now()
	return nil
}

// respond writes an answer admission made itself (a REGISTER's, from the
// stateless registrar); a 200 to a REGISTER marks the connection as one
// a phone is registered over.
func (c *streamConn) respond(b []byte) {
	if registerOK(b) {
		c.registered.Store(true)
	}
	c.Conn.Write(b)
}

// registerOK tells whether msg is a 200 answering a REGISTER.
func registerOK(msg []byte) bool {
	if !bytes.HasPrefix(msg, []byte("SIP/2.0 200 ")) {
		return false
	}
	ok := false
	eachHeader(msg, func(name, value string) {
		if canonicalName(name) == "CSeq" {
			f := strings.Fields(value)
			ok = len(f) == 2 && f[1] == "REGISTER"
		}
	})
	return ok
}

// drain reads away what the peer still sends (at most 64 KiB, for at most
// a second) before sipgo closes the connection: a close with unread input
// resets the connection, and the peer may then lose the answer just
// written.
func (c *streamConn) drain() {
	c.Conn.SetReadDeadline(time.Now().Add(time.Second))
	io.CopyN(io.Discard, c.Conn, 64<<10)
}

// fill reads more of the stream, within the connection's deadline
// (see streamConn). When the peer ends it inside a message (a
// Content-Length past the end, no empty line after the headers), that
// message gets a 400 if it can be addressed.
func (c *streamConn) fill() error {
	if c.chunk == nil {
		c.chunk = make([]byte, 32<<10)
	}
	for {
		now := time.Now()
		d := c.deadline(now)
		if !now.Before(d) {
			return c.timeout()
		}
		// Armed no later than d; one that fires early is armed again.
		if !c.armed.After(now) || d.Before(c.armed) {
			c.Conn.SetReadDeadline(d)
			c.armed = d
		}
		m, err := c.Conn.Read(c.chunk)
		c.in = append(c.in, c.chunk[:m]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.armed = time.Time{}
			if m > 0 {
				return nil
			}
			continue
		}
		if errors.Is(err, io.EOF) && len(bytes.Trim(c.in, "\r\n")) > 0 {
			if r := rawAnswer(c.in, 400, "Incomplete Message"); r != nil {
				c.Conn.Write(r)
			}
		}
		return err
	}
}

// deadline is when the connection's next read must end: TCPReadTimeout
// after the accept until a first message is framed, and after the first
// byte of a message until it is whole; between messages TCPIdleTimeout
// after the last, MaxExpires when a phone registered over it.
func (c *streamConn) deadline(now time.Time) time.Time {
	partial := len(bytes.Trim(c.in, "\r\n")) > 0
	switch {
	case !partial:
		c.msgStart = time.Time{}
	case c.msgStart.IsZero():
		c.msgStart = now
	}
	switch {
	case !c.framed:
		return c.accepted.Add(c.s.TCPReadTimeout)
	case partial:
		return c.msgStart.Add(c.s.TCPReadTimeout)
	case c.registered.Load():
		return c.idleSince.Add(max(c.s.TCPIdleTimeout, c.s.MaxExpires))
	}
	return c.idleSince.Add(c.s.TCPIdleTimeout)
}

// timeout ends a connection past its deadline: as the end of the stream
// for sipgo, which then closes it; unanswered.
func (c *streamConn) timeout() error {
	if c.framed && len(bytes.Trim(c.in, "\r\n")) == 0 {
		c.s.Log.Debug("closing idle TCP connection", "src", c.src.String())
	} else {
		c.s.readTimedOut(c.src, len(c.in))
	}
	return io.EOF
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

package sip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icholy/digest"
)

// sipStream reads SIP messages off a raw TCP connection.
type sipStream struct {
	t    *testing.T
	conn *net.TCPConn
	in   []byte
}

// dialSIP connects to e over TCP from the loopback address ip.
func dialSIP(t *testing.T, e *env, ip string) *sipStream {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", e.addr.String())
	if err != nil {
		t.Fatalf("connecting from %s: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return &sipStream{t: t, conn: c.(*net.TCPConn)}
}

// via is a Via header for a request sent over the stream.
func (s *sipStream) via(branch string) string {
	return "Via: SIP/2.0/TCP " + s.conn.LocalAddr().String() + ";branch=z9hG4bK-" + branch
}

// next returns the next message (a pong as "\r\n") within wait, or the
// error that ended the stream.
func (s *sipStream) next(wait time.Duration) (string, error) {
	s.conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for {
		if len(s.in) >= 2 && string(s.in[:2]) == "\r\n" {
			s.in = s.in[2:]
			return "\r\n", nil
		}
		if n, kind := frame(s.in, 1<<16); kind == frameMessage {
			msg := string(s.in[:n])
			s.in = s.in[n:]
			return msg, nil
		}
		n, err := s.conn.Read(buf)
		s.in = append(s.in, buf[:n]...)
		if err != nil && n == 0 {
			return "", err
		}
	}
}

// answer returns the next message, failing the test when none comes.
func (s *sipStream) answer() string {
	s.t.Helper()
	msg, err := s.next(5 * time.Second)
	if err != nil {
		s.t.Fatalf("no answer from the server: %v", err)
	}
	return msg
}

// options sends an OPTIONS and expects a 200.
func (s *sipStream) options(branch string) {
	s.t.Helper()
	s.conn.Write(request(options, s.via(branch), "Call-ID: "+branch+"@test"))
	if msg := s.answer(); !strings.HasPrefix(msg, "SIP/2.0 200 ") {
		s.t.Fatalf("OPTIONS over TCP from %s: %q", s.conn.LocalAddr(), msg)
	}
}

// register registers user's contact over the stream, answering the
// challenge, and expects a 200.
func (s *sipStream) register(user string) {
	s.t.Helper()
	contact := "Contact: <sip:" + user + "@" + s.conn.LocalAddr().String() + ";transport=tcp>"
	msg := func(cseq int, extra ...string) []byte {
		return request("REGISTER sip:"+testRealm+" SIP/2.0", append([]string{
			s.via(fmt.Sprintf("reg%d", cseq)), "From: <sip:" + user + "@" + testRealm + ">;tag=r1",
			"To: <sip:" + user + "@" + testRealm + ">", "Call-ID: reg-" + user + "@" + s.conn.LocalAddr().String(),
			fmt.Sprintf("CSeq: %d REGISTER", cseq), contact, "Expires: 600"}, extra...)...)
	}
	s.conn.Write(msg(1))
	res := s.answer()
	var chal *digest.Challenge
	for _, line := range strings.Split(res, "\r\n") {
		if v, ok := strings.CutPrefix(line, "WWW-Authenticate: "); ok && strings.Contains(v, "MD5") {
			c, err := digest.ParseChallenge(v)
			if err != nil {
				s.t.Fatal(err)
			}
			chal = c
			break
		}
	}
	if chal == nil {
		s.t.Fatalf("REGISTER got no MD5 challenge: %q", res)
	}
	cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:" + testRealm,
		Username: user, Password: "secret-" + user})
	if err != nil {
		s.t.Fatal(err)
	}
	s.conn.Write(msg(2, "Authorization: "+cred.String()))
	if res := s.answer(); !strings.HasPrefix(res, "SIP/2.0 200 ") {
		s.t.Fatalf("REGISTER over TCP from %s: %q", s.conn.LocalAddr(), res)
	}
}

// closed awaits the server's end of the stream, reading away what
// comes before it; false when it stays open for wait.
func (s *sipStream) closed(wait time.Duration) bool {
	for {
		_, err := s.next(wait)
		var ne net.Error
		switch {
		case err == nil:
			continue
		case errors.As(err, &ne) && ne.Timeout():
			return false
		}
		return true // EOF or reset
	}
}

// refused tells whether the server closed a connection from ip at once:
// the connect is reset, or the connection ends without an answer.
func refused(t *testing.T, e *env, ip string) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", e.addr.String())
	if errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	if err != nil {
		t.Fatalf("connecting from %s: %v", ip, err)
	}
	defer c.Close()
	s := &sipStream{t: t, conn: c.(*net.TCPConn)}
	msg, err := s.next(5 * time.Second)
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout()) && msg == ""
}

// udpOptions expects a 200 to an OPTIONS sent over UDP.
func udpOptions(t *testing.T, e *env) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(e.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(request(options, "Via: SIP/2.0/UDP "+c.LocalAddr().String()+";branch=z9hG4bK-udp"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 ") {
		t.Fatalf("OPTIONS over UDP: %q, %v", buf[:n], err)
	}
}

// stillServing fails the test when Serve has returned.
func stillServing(t *testing.T, e *env) {
	t.Helper()
	select {
	case err := <-e.done:
		e.done <- err // for e.stop
		t.Fatalf("Serve returned: %v\n%s", err, e.log)
	default:
	}
}

// TestTCPConnCaps: a connection over MaxConnsPerSource or MaxConns is
// closed at once, unanswered, counted and logged; a slot given back is
// taken again.
func TestTCPConnCaps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *Server) { s.MaxConns, s.MaxConnsPerSource = 4, 2 })
	a1, a2 := dialSIP(t, e, "127.0.0.1"), dialSIP(t, e, "127.0.0.1")
	a1.options("a1")
	a2.options("a2")
	if !refused(t, e, "127.0.0.1") {
		t.Fatal("a third connection from 127.0.0.1 stayed open (MaxConnsPerSource 2)")
	}
	b1, b2 := dialSIP(t, e, "127.0.0.2"), dialSIP(t, e, "127.0.0.2")
	b1.options("b1")
	b2.options("b2")
	if !refused(t, e, "127.0.0.3") {
		t.Fatal("a fifth connection stayed open (MaxConns 4)")
	}
	if got := e.srv.Stats().TCPRefused; got != 2 {
		t.Errorf("TCPRefused %d, want 2", got)
	}
	if !strings.Contains(e.log.String(), `msg=security event=tcp_conn_limit src=127.0.0.1 limit=per_source open=2`) {
		t.Errorf("no tcp_conn_limit line for 127.0.0.1 in:\n%s", e.log)
	}

	// a1 ends its side; once the server has closed it, 127.0.0.3 gets the
	// slot.
	a1.conn.CloseWrite()
	if !a1.closed(5 * time.Second) {
		t.Fatal("the server kept a connection its peer ended")
	}
	dialSIP(t, e, "127.0.0.3").options("c2")

	e.stop()
	if total, _ := e.srv.conns.counts(netip.Addr{}); total != 0 {
		t.Errorf("%d connection slots still taken after Serve returned", total)
	}
}

// TestTCPTimeouts: a connection is closed when a message takes longer
// than TCPReadTimeout (even while bytes trickle in), when it sends nothing
// after its accept for as long, and when it stays idle between messages
// for TCPIdleTimeout; CRLF keepalives keep it, and so does a phone's
// registration.
func TestTCPTimeouts(t *testing.T) {
	t.Parallel()
	const readTimeout, idle = 200 * time.Millisecond, 400 * time.Millisecond
	e := newEnv(t, func(s *Server) { s.TCPReadTimeout, s.TCPIdleTimeout = readTimeout, idle })
	partial := string(request(options, "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-part"))
	partial = partial[:len(partial)-40]

	t.Run("partial", func(t *testing.T) {
		t.Parallel()
		s := dialSIP(t, e, "127.0.0.1")
		s.options("p1") // not the first message
		s.conn.Write([]byte(partial))
		closedAfter(t, s, time.Now(), readTimeout)
	})
	t.Run("trickle", func(t *testing.T) {
		t.Parallel()
		s := dialSIP(t, e, "127.0.0.1")
		s.options("t1")
		start := time.Now()
		go func() { // a byte every 20 ms, until the server closes
			for i := 0; ; i++ {
				if _, err := s.conn.Write([]byte{partial[i%len(partial)]}); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		closedAfter(t, s, start, readTimeout) // not after 5 s: bytes do not extend it
	})
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		s := dialSIP(t, e, "127.0.0.1")
		closedAfter(t, s, start, readTimeout)
	})
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		s := dialSIP(t, e, "127.0.0.1")
		s.options("i1")
		closedAfter(t, s, time.Now(), (readTimeout+idle)/2) // the idle timeout, not the read one
	})
	t.Run("keepalive", func(t *testing.T) {
		t.Parallel()
		s := dialSIP(t, e, "127.0.0.1")
		s.options("k1")
		for range 5 { // 5 × 150 ms, past the idle timeout
			if s.closed(150 * time.Millisecond) {
				t.Fatal("closed while sending keepalives")
			}
			s.conn.Write([]byte("\r\n\r\n"))
			if pong := s.answer(); pong != "\r\n" {
				t.Fatalf("ping answered with %q", pong)
			}
		}
	})
	t.Run("registered", func(t *testing.T) {
		t.Parallel()
		s := dialSIP(t, e, "127.0.0.2")
		s.register("bob")
		if s.closed(2 * idle) {
			t.Fatal("a connection a phone registered over was closed after the idle timeout")
		}
		s.options("r1")
	})
	t.Cleanup(func() { // after the subtests
		if !t.Failed() && !strings.Contains(e.log.String(), "msg=security event=tcp_read_timeout src=127.0.0.1") {
			t.Errorf("no tcp_read_timeout line in:\n%s", e.log)
		}
	})
}

// TestTCPAcceptRetry: with the process out of descriptors, accepts fail
// (EMFILE); the listener retries them, and once descriptors are back the
// waiting connection is accepted and answered. Serve goes on.
func TestTCPAcceptRetry(t *testing.T) {
	failed := make(chan error, 64)
	e := newEnv(t, func(s *Server) {
		s.conns.acceptFailed = func(err error) {
			select {
			case failed <- err:
			default:
			}
		}
	})
	// The client's socket exists before the limit drops; connecting needs
	// no new descriptor, accepting does.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	restore := lowerNofile(t, lowestFreeFD(t)) // no descriptor left
	err = syscall.Connect(fd, &syscall.SockaddrInet4{Port: int(e.addr.Port()), Addr: e.addr.Addr().As4()})
	if err != nil {
		restore()
		t.Fatal(err)
	}
	for range 3 {
		if err := recv(t, failed, "the listener to retry a failed accept"); !errors.Is(err, syscall.EMFILE) {
			restore()
			t.Fatalf("accept failed with %v, want EMFILE", err)
		}
	}
	restore()

	f := os.NewFile(uintptr(fd), "client")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := &sipStream{t: t, conn: c.(*net.TCPConn)}
	defer c.Close()
	s.options("after-emfile")
	stillServing(t, e)
	udpOptions(t, e)
	if !strings.Contains(e.log.String(), "msg=security event=tcp_accept_failed") {
		t.Errorf("no tcp_accept_failed line in:\n%s", e.log)
	}
}

// TestRetryAccept: which accept errors are retried.
func TestRetryAccept(t *testing.T) {
	t.Parallel()
	op := func(err error) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", err)}
	}
	for _, c := range []struct {
		err   error
		retry bool
	}{
		{op(syscall.EMFILE), true},
		{op(syscall.ENFILE), true},
		{op(syscall.ENOBUFS), true},
		{op(syscall.ENOMEM), true},
		{op(syscall.ECONNABORTED), true},
		{op(net.ErrClosed), false},
		{op(syscall.EINVAL), false},
		{errors.New("something else"), false},
	} {
		if got := retryAccept(c.err); got != c.retry {
			t.Errorf("retryAccept(%v) = %v, want %v", c.err, got, c.retry)
		}
	}
}

// TestServeListenerStops: a listener that stops before Serve's context
// ends is logged at Error with its address, and Serve stops and returns
// an error (partyline serve then exits 1).
func TestServeListenerStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ln := e.srv.tcp[0].(*listener)
	ln.Listener.Close() // behind the wrapper's back
	var err error
	select {
	case err = <-e.done:
		e.done <- err // for e.stop
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still running with a listener gone")
	}
	addr := e.addr.String()
	if err == nil || !strings.Contains(err.Error(), "tcp "+addr) {
		t.Errorf("Serve returned %v, want an error naming tcp %s", err, addr)
	}
	if !strings.Contains(e.log.String(), "level=ERROR") || !strings.Contains(e.log.String(), addr) {
		t.Errorf("no Error line naming %s in:\n%s", addr, e.log)
	}
}

// TestSourceKey: IPv4 connections count per address, IPv6 per /64.
func TestSourceKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::",
		"2001:db8:1:3:3:4:5:6": "2001:db8:1:3::",
	} {
		if got := sourceKey(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("sourceKey(%s) = %s, want %s", in, got, want)
		}
	}
}

// closedAfter awaits the server's close of s, which must come least after
// since at the earliest, within 5 s.
func closedAfter(t *testing.T, s *sipStream, since time.Time, least time.Duration) {
	t.Helper()
	if !s.closed(5 * time.Second) {
		t.Fatal("still open after 5 s")
	}
	if d := time.Since(since); d < least {
		t.Fatalf("closed after %v, before %v", d, least)
	}
}

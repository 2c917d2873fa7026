package sip

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/partyline/partyline/location"
)

// TCP limits (audit issue 14): a connection flood must not take the
// descriptors every listener and the data file need. The listener wrapper
// (conn.go) retries failed accepts instead of letting sipgo's accept loop
// end, and closes connections over MaxConns or MaxConnsPerSource at once;
// streamConn closes connections that are slow to send a message
// (TCPReadTimeout) or idle (TCPIdleTimeout).

const (
	// maxConnsCeiling bounds the default MaxConns: each open connection
	// holds about 100 KiB of read buffers (sipgo's 64 KiB, our 32 KiB).
	maxConnsCeiling = 4096
	// acceptRetryMin, acceptRetryMax: a failed accept is retried after
	// 5 ms, doubling up to 1 s, as net/http's Server.Serve does.
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
	// securityLogEvery: at most one line per event kind this often.
	securityLogEvery = time.Second
)

func (s *Server) tcpDefaults() {
	if s.MaxConns == 0 {
		s.MaxConns = defaultMaxConns(descriptorLimit())
	}
	if s.MaxConnsPerSource == 0 {
		s.MaxConnsPerSource = 128
	}
	if s.TCPReadTimeout == 0 {
		s.TCPReadTimeout = 10 * time.Second
	}
	if s.TCPIdleTimeout == 0 {
		s.TCPIdleTimeout = 120 * time.Second
	}
	if s.conns.bySource == nil {
		s.conns.bySource = map[netip.Addr]int{}
	}
}

// defaultMaxConns is half the descriptor limit (the rest for UDP sockets,
// voicemail RTP, the data file, the admin socket and connections the
// server opens), at most maxConnsCeiling.
func defaultMaxConns(limit uint64) int {
	if limit == 0 || limit/2 > maxConnsCeiling {
		return maxConnsCeiling
	}
	return max(int(limit/2), 16)
}

// connTable counts the accepted TCP connections open, in total and per
// source.
type connTable struct {
	mu       sync.Mutex
	total    int
	bySource map[netip.Addr]int
	flows    map[netip.AddrPort]int // open connections by remote address
	// ended are the remote addresses whose last connection closed (a flow
	// a phone may have registered over, now dead); bounded.
	ended map[netip.AddrPort]struct{}

	refused     atomic.Int64 // closed at once, over a cap
	timedOut    atomic.Int64 // closed for TCPReadTimeout
	acceptFails atomic.Int64 // accepts failed and retried

	acceptLog, limitLog, timeoutLog logLimit

	// acceptFailed, when set, is called after each failed accept that
	// will be retried (tests await it).
	acceptFailed func(err error)
}

// sourceKey is what MaxConnsPerSource counts by: the address, or for
// IPv6 its /64 (one subscriber's or one site's prefix: an attacker has
// all of it).
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// open takes a slot for a connection from key; "" when it got one, else
// the cap that refused it.
func (t *connTable) open(key netip.Addr, src netip.AddrPort, maxTotal, maxPerSource int) (refusedBy string, open int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.bySource[key]; n >= maxPerSource {
		return "per_source", n
	}
	if t.total >= maxTotal {
		return "total", t.total
	}
	t.total++
	t.bySource[key]++
	if t.flows == nil {
		t.flows = map[netip.AddrPort]int{}
	}
	t.flows[src]++
	delete(t.ended, src)
	return "", 0
}

// close gives back a slot open took.
func (t *connTable) close(key netip.Addr, src netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total--
	if t.bySource[key]--; t.bySource[key] <= 0 {
		delete(t.bySource, key)
	}
	if t.flows[src]--; t.flows[src] <= 0 {
		delete(t.flows, src)
		if t.ended == nil || len(t.ended) >= maxEndedFlows {
			t.ended = map[netip.AddrPort]struct{}{} // forget the oldest all at once
		}
		t.ended[src] = struct{}{}
	}
}

// maxEndedFlows bounds connTable.ended.
const maxEndedFlows = 100000

// flowEnded reports that the connections from src all closed, and none
// came since: a phone that registered over one is unreachable until it
// connects again.
func (t *connTable) flowEnded(src netip.AddrPort) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ended := t.ended[src]
	return ended && t.flows[src] == 0
}

// counts returns the connections open in total and from key.
func (t *connTable) counts(key netip.Addr) (total, fromKey int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total, t.bySource[key]
}

// retryAccept tells whether a failed Accept is worth retrying: out of
// descriptors (EMFILE, ENFILE), of buffers or memory, or a connection
// aborted before it was accepted. A closed listener is not.
func retryAccept(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// logLimit lets one line through per securityLogEvery and counts the
// rest, so an attacker cannot flood the log.
type logLimit struct {
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// allow reports whether a line may go out now, and how many were held
// back since the last one.
func (l *logLimit) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.next, l.suppressed = now.Add(securityLogEvery), 0
	return true, n
}

// acceptFailed logs (rate-limited) a failed accept on laddr that is
// retried after delay.
func (s *Server) acceptFailed(laddr net.Addr, err error, delay time.Duration) {
	s.conns.acceptFails.Add(1)
	if ok, held := s.conns.acceptLog.allow(time.Now()); ok {
		s.Log.Warn("security", "event", "tcp_accept_failed", "addr", laddr.String(), "error", err.Error(),
			"retry_in", delay.String(), "suppressed", held)
	}
	if f := s.conns.acceptFailed; f != nil {
		f(err)
	}
}

// connRefused logs (rate-limited) a connection from src closed at once
// because the cap named by limit was reached with open connections.
func (s *Server) connRefused(src netip.AddrPort, limit string, open int) {
	s.conns.refused.Add(1)
	if ok, held := s.conns.limitLog.allow(time.Now()); ok {
		s.Log.Warn("security", "event", "tcp_conn_limit", "src", src.Addr().Unmap().String(), "limit", limit,
			"open", open, "suppressed", held)
	}
}

// readTimedOut logs (rate-limited) a connection from src closed because
// a message took longer than TCPReadTimeout; buffered is what it had sent
// of it.
func (s *Server) readTimedOut(src netip.AddrPort, buffered int) {
	s.conns.timedOut.Add(1)
	if ok, held := s.conns.timeoutLog.allow(time.Now()); ok {
		s.Log.Warn("security", "event", "tcp_read_timeout", "src", src.Addr().Unmap().String(), "bytes", buffered,
			"suppressed", held)
	}
}

// flowGone reports a binding over TCP whose connection we saw close.
func (s *Server) flowGone(b location.Binding) bool {
	if !strings.EqualFold(b.Transport, "tcp") {
		return false
	}
	src, err := netip.ParseAddrPort(b.Source)
	return err == nil && s.conns.flowEnded(src)
}

package sip

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/guard"
	"github.com/partyline/partyline/media"
)

// Server is the SIP server. Its exported fields are its configuration;
// each comment states the default used when the field is zero.
type Server struct {
	// Listen addresses, each served on UDP and TCP. Default ["0.0.0.0:5060"].
	// Port 0 picks one free port for both.
	Listen []string
	// MaxMessage bounds one message in bytes. Default 65536.
	MaxMessage int
	// NonceTTL is how long a digest nonce stays fresh. Default 5 min.
	NonceTTL time.Duration
	// MinExpires, DefaultExpires, MaxExpires bound registrations.
	// Defaults 60 s, 3600 s, 7200 s.
	MinExpires, DefaultExpires, MaxExpires time.Duration
	// BanThreshold failed authentications of one user from one source IP
	// within BanWindow are tolerated; one more bans that user from that IP
	// for BanFor. BanSourceThreshold failures of any users from one IP
	// ban the IP. Only failures with a nonce we sent to that IP count; a
	// trunk's addresses are never banned. Defaults 5, 20, 1 min, 5 min.
	BanThreshold       int
	BanSourceThreshold int
	BanWindow          time.Duration
	BanFor             time.Duration
	// Bans, when set, is the ban table the server shares with the HTTP
	// API (a source failing over either is counted once); its thresholds
	// are its own. Default: one of the server's, from the fields above.
	Bans *guard.Bans
	// UnprovenRate and UnprovenBurst bound what one source IP gets without
	// valid credentials (challenges): UnprovenRate a second, UnprovenBurst
	// in a row; a source past that is flooding and is banned for BanFor.
	// Trunks' addresses are not limited. Defaults 20/s, 200; a negative
	// UnprovenRate turns the limit off (load tests from one address).
	UnprovenRate  float64
	UnprovenBurst int
	// DigestURIServer also accepts digest credentials whose uri names this
	// server (a SIP URI of our address, no user) rather than the
	// Request-URI, as SIPp 3.6 computes them for every request. Default
	// false: the uri must name the Request-URI, so credentials taken from
	// one request cannot be sent to another destination.
	DigestURIServer bool
	// MaxUnauthenticated bounds a request that needs credentials and has
	// no valid ones: a larger one gets 413, not a challenge. Default 16 KiB.
	MaxUnauthenticated int
	// DigestSHA256First puts the SHA-256 challenge before the MD5 one.
	// Default false: sipsak, SIPp and many desk phones read only the first
	// challenge and know only MD5; clients that prefer SHA-256 still find it.
	DigestSHA256First bool
	// MD5OnlyUserAgents are User-Agent substrings (any case) of clients
	// that give up when a 401/407 offers any algorithm they lack, even
	// beside MD5; they are challenged with MD5 alone. Default ["baresip"]
	// (libre 1.x answers such a challenge with ENOSYS). An empty, non-nil
	// slice turns the exception off.
	MD5OnlyUserAgents []string
	// SweepEvery is how often expired bindings are removed. Default 30 s.
	SweepEvery time.Duration
	// RingTime is how long one step of a number's default call flow rings
	// (custom flows give their own). Default 25 s.
	RingTime time.Duration
	// RouteKey signs the routing our Record-Route carries (rr.go), so
	// calls in progress survive a restart that keeps it. Default: a random
	// key, good until the process ends.
	RouteKey []byte
	// RingCallersPhone rings the phone a member calls their shared number
	// from, with the others. Default false: it stays quiet.
	RingCallersPhone bool
	// TimerC bounds a forked call's ringing as a whole. Default 3 min.
	TimerC time.Duration
	// SettleTimeout bounds how long an ended call waits for its cancelled
	// branches' final responses (487), and for its winning 2xx to go
	// upstream. Default 5 s.
	SettleTimeout time.Duration
	// ConnectTimeout bounds opening a connection (TCP) for a request we
	// send, and handing it to the transaction layer. Default 10 s.
	ConnectTimeout time.Duration
	// AckWait is how long a BYE towards a phone waits for the caller's ACK
	// to go first (it may have been lost). Default 500 ms.
	AckWait time.Duration
	// DrainTimeout bounds how long Serve waits at shutdown for voicemail
	// recordings and record writes in progress. Default 15 s.
	DrainTimeout time.Duration
	// MaxRegistering bounds the REGISTERs being answered at once (each
	// waits for its bindings' commit); more are dropped and retransmitted
	// by the phones. Default 4096.
	MaxRegistering int
	// Advertise is the host[:port] put in Via and Record-Route. Default:
	// the listen address, or when that is unspecified, the address the
	// request was sent to.
	Advertise string
	// NoUnsolicitedMWI stops message-waiting NOTIFYs to registered devices
	// that did not SUBSCRIBE. Default false: they get them.
	NoUnsolicitedMWI bool
	// RTPPorts is the UDP port range of voicemail media, "LOW-HIGH".
	// Default "20000-20999".
	RTPPorts string
	// Record bounds voicemail recordings; zero fields take media's
	// defaults (180 s, 10 s of silence, 10 s without RTP).
	Record media.RecordOptions
	// MaxConns bounds the TCP connections open at once; one more is closed
	// at once, unanswered, and counted (Stats.TCPRefused). Default: half the
	// soft descriptor limit (RLIMIT_NOFILE, which Go raises to the hard
	// one), at most 4096: each open connection holds about 100 KiB.
	MaxConns int
	// MaxConnsPerSource bounds the TCP connections open at once from one
	// source address (IPv6: one /64), treated as MaxConns is. Default 128:
	// an office's phones behind one NAT keep one connection each.
	MaxConnsPerSource int
	// TCPReadTimeout is how long a TCP connection may take to send a whole
	// message: from its accept to its first message, and from the first
	// byte of each message to its last; then it is closed. Default 10 s.
	TCPReadTimeout time.Duration
	// TCPIdleTimeout closes a TCP connection that sent no message or CRLF
	// keepalive for this long. A connection a phone registered over (a 200
	// to its REGISTER went out on it) may stay idle for MaxExpires instead,
	// so the phone keeps it for calls while its binding lasts. Default
	// 120 s, as Kamailio's tcp_connection_lifetime.
	TCPIdleTimeout time.Duration
	// Limits bound voicemail calls, subscriptions and NOTIFYs (limits.go).
	Limits
	// TypingRefresh is how long an isComposing "active" without its own
	// refresh counts as typing. Default 15 s.
	TypingRefresh time.Duration
	// Clock gives the time (Now) and the timers of calls. Default: real
	// timers, and the location store's Now.
	Clock Clock
	// Log receives operator logs. Default: discard.
	Log *slog.Logger
	// Swept, when set, is called after each sweep with how many bindings it
	// removed (tests await it).
	Swept func(removed int)

	dir      Directory
	loc      Location
	calls    CallLog
	texts    Texts
	vmStore  VoicemailStore
	contacts ContactBook

	parser       *sip.Parser
	nonces       nonces
	bans         *guard.Bans
	unproven     *guard.Limiter // requests without valid credentials, per source IP
	securityLogs *guard.Limiter // security log lines, per source IP
	ua           *sipgo.UserAgent
	srv          *sipgo.Server
	client       *sipgo.Client
	dialogs      *dialogs
	subs         *subscriptions
	typing       typingState
	vm           *vmCalls
	rtpPorts     *media.Ports
	stopping     chan struct{}    // closed when Serve's ctx ends
	wg           sync.WaitGroup   // voicemail recordings, record writes, stateless REGISTERs in progress
	registering  chan struct{}    // bounds stateless REGISTERs in flight
	trackMu      sync.Mutex       // guards draining against wg.Add
	draining     bool             // Serve is stopping: goTracked refuses
	udp          []net.PacketConn // one per listen address
	addrs        []netip.AddrPort // their addresses (Addrs)
	udpSiblings  []net.PacketConn // more readers on the same ports
	udpReaders   int              // sockets per UDP address (bind)
	tcp          []net.Listener
	conns        connTable // open TCP connections, for the caps (tcp.go)

	panics       atomic.Int64
	handling     atomic.Int64 // requests in their handlers (serve) now
	hooks        testHooks
	authFailures atomic.Int64
}

// testHooks let tests stop a call at a point where goroutines race; nil
// outside tests.
type testHooks struct {
	answered      func(*fork) // the first 2xx: the call is answered, the 2xx not yet relayed
	awaitingRelay func(*fork) // the handler waits for that relay before it returns
}

var setGlobals sync.Once

func (s *Server) defaults() {
	if len(s.Listen) == 0 {
		s.Listen = []string{"0.0.0.0:5060"}
	}
	if s.MaxMessage == 0 {
		s.MaxMessage = 64 << 10
	}
	if s.NonceTTL == 0 {
		s.NonceTTL = 5 * time.Minute
	}
	if s.MinExpires == 0 {
		s.MinExpires = 60 * time.Second
	}
	if s.DefaultExpires == 0 {
		s.DefaultExpires = 3600 * time.Second
	}
	if s.MaxExpires == 0 {
		s.MaxExpires = 7200 * time.Second
	}
	if s.BanThreshold == 0 {
		s.BanThreshold = 5
	}
	if s.BanSourceThreshold == 0 {
		s.BanSourceThreshold = 4 * s.BanThreshold
	}
	if s.UnprovenRate == 0 {
		s.UnprovenRate = 20
	}
	if s.UnprovenBurst == 0 {
		s.UnprovenBurst = 200
	}
	if s.MaxUnauthenticated == 0 {
		s.MaxUnauthenticated = 16 << 10
	}
	if s.BanWindow == 0 {
		s.BanWindow = time.Minute
	}
	if s.BanFor == 0 {
		s.BanFor = 5 * time.Minute
	}
	if s.MD5OnlyUserAgents == nil {
		s.MD5OnlyUserAgents = []string{"baresip"}
	}
	if s.RTPPorts == "" {
		s.RTPPorts = "20000-20999"
	}
	if s.SweepEvery == 0 {
		s.SweepEvery = 30 * time.Second
	}
	if s.RingTime == 0 {
		s.RingTime = 25 * time.Second
	}
	if s.TimerC == 0 {
		s.TimerC = 3 * time.Minute
	}
	s.callDefaults()
	if s.Clock == nil {
		s.Clock = realClock{now: time.Now}
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	s.tcpDefaults()
}

// Start binds every listen address on UDP and TCP (the same port on both).
func (s *Server) Start() error {
	d := Deps{Directory: s.dir, Location: s.loc, Calls: s.calls, Texts: s.texts, Voicemail: s.vmStore, Contacts: s.contacts}
	if m := d.missing(); m != "" {
		return fmt.Errorf("sip: no %s store given (sip.Deps.%s)", strings.ToLower(m), m)
	}
	s.defaults()
	// Transactions keep sipgo's timers, RFC 3261's: a finished one stays
	// 32 s over UDP (Timers D, J; none over TCP) and T4 = 5 s (I, K), so a
	// request resent within 32 s is answered again and handled once.
	// Message sizes are sipgo globals too, the same for every server and
	// client in the process; they only raise its limits.
	setGlobals.Do(func() {
		// Registrar answers with several Contacts exceed the 1500-byte default.
		sip.UDPMTUSize = 65000
		// Read whole datagrams up to the UDP maximum (the default is 32 KiB,
		// below our 64 KiB message limit).
		sip.TransportBufferReadSize = 65535
	})
	s.udpReaders = runtime.GOMAXPROCS(0)
	s.parser = sip.NewParser()
	s.nonces = newNonces(s.NonceTTL)
	s.bans = s.Bans
	if s.bans == nil {
		s.bans = guard.NewBans(s.BanThreshold, s.BanSourceThreshold, s.BanWindow, s.BanFor)
	}
	s.unproven = guard.NewLimiter(s.UnprovenRate, s.UnprovenBurst)
	s.securityLogs = guard.NewLimiter(1, 5)
	quiet := slog.New(levelAtLeast{s.Log.Handler(), slog.LevelWarn})
	s.dialogs = newDialogs()
	s.registering = make(chan struct{}, s.MaxRegistering)
	s.subs = newSubscriptions()
	s.vm = &vmCalls{m: map[string]*vmCall{}}
	s.stopping = make(chan struct{})
	low, high, err := media.ParsePortRange(s.RTPPorts)
	if err != nil {
		return fmt.Errorf("bad RTP port range %q: %w", s.RTPPorts, err)
	}
	if s.rtpPorts, err = media.NewPorts(low, high); err != nil {
		return err
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("partyline"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet),
			sip.WithTransactionLayerUnhandledResponseHandler(s.relayStateless)))
	if err != nil {
		return err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		return err
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(quiet))
	if err != nil {
		return err
	}
	s.ua, s.srv, s.client = ua, srv, client
	srv.OnNoRoute(s.serve)
	for _, m := range []func(sipgo.RequestHandler){srv.OnRegister, srv.OnOptions, srv.OnAck, srv.OnCancel, srv.OnInvite} {
		m(s.serve)
	}
	for _, addr := range s.Listen {
		if err := s.bind(addr); err != nil {
			s.closeSockets()
			return err
		}
	}
	return nil
}

// Serve answers SIP until ctx ends, then closes the listeners and
// connections and returns nil. When a listener stops before (sipgo's
// loop on it returned), it logs that at Error, stops as well and returns
// the error: a server that no longer listens everywhere must not look
// alive.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx) // ends the sweep when a listener stops
	defer cancel()
	var wg sync.WaitGroup
	type stopped struct {
		transport string
		addr      net.Addr
		err       error
	}
	errc := make(chan stopped, len(s.udp)+len(s.udpSiblings)+len(s.tcp))
	for _, pc := range append(s.udp, s.udpSiblings...) {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- stopped{"udp", pc.LocalAddr(), s.srv.ServeUDP(pc)} }()
	}
	for _, ln := range s.tcp {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- stopped{"tcp", ln.Addr(), s.srv.ServeTCP(ln)} }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.sweep(ctx) }()
	var err error
	select {
	case <-ctx.Done():
	case st := <-errc:
		// Nothing closes a listener before ctx ends: any end is a failure.
		if st.err == nil {
			st.err = errors.New("stopped")
		}
		s.Log.Error("SIP listener stopped; stopping the server", "transport", st.transport, "addr", st.addr.String(), "error", st.err)
		err = fmt.Errorf("SIP listener %s %s: %w", st.transport, st.addr, st.err)
	}
	// Drain: recordings in progress end now and are stored (bounded); no
	// new tracked work starts.
	s.trackMu.Lock()
	s.draining = true
	s.trackMu.Unlock()
	close(s.stopping)
	drained := make(chan struct{})
	go func() { s.wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(s.DrainTimeout):
		s.Log.Warn("voicemail recordings still running at shutdown")
	}
	s.closeSockets()
	s.ua.Close()
	cancel()
	wg.Wait()
	return err
}

// sweep removes expired bindings every SweepEvery until ctx ends.
func (s *Server) sweep(ctx context.Context) {
	t := time.NewTicker(s.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.loc.Sweep()
		if err != nil {
			s.Log.Error("sweeping expired bindings", "error", err)
		}
		s.bans.Prune(s.Now())
		s.unproven.Prune(s.Now())
		s.securityLogs.Prune(s.Now())
		s.dialogs.prune(time.Now())
		if s.Swept != nil {
			s.Swept(n)
		}
	}
}

// Stats are counters for operators and tests.
type Stats struct {
	Panics       int64
	AuthFailures int64
	TCPRefused   int64 // connections closed at once, over MaxConns or MaxConnsPerSource
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Panics: s.panics.Load(), AuthFailures: s.authFailures.Load(), TCPRefused: s.conns.refused.Load()}
}

// levelAtLeast passes records at min or above.
type levelAtLeast struct {
	slog.Handler
	min slog.Level
}

func (h levelAtLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

// goTracked runs f in a goroutine Serve waits for at shutdown; false (and
// f not run) once Serve has begun to drain.
func (s *Server) goTracked(f func()) bool {
	s.trackMu.Lock()
	if s.draining {
		s.trackMu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.trackMu.Unlock()
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// callDefaults are defaults's for calls: the route key, the waits and
// bounds of a call's life.
func (s *Server) callDefaults() {
	if len(s.RouteKey) == 0 {
		s.RouteKey = make([]byte, 32)
		rand.Read(s.RouteKey)
	}
	if s.SettleTimeout == 0 {
		s.SettleTimeout = 5 * time.Second
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = 10 * time.Second
	}
	if s.AckWait == 0 {
		s.AckWait = 500 * time.Millisecond
	}
	if s.DrainTimeout == 0 {
		s.DrainTimeout = 15 * time.Second
	}
	if s.MaxRegistering == 0 {
		s.MaxRegistering = 4096
	}
}

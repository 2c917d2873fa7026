package media

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ErrBusy means a Session is already playing (for Play) or recording (for
// Record): a session does one of each at a time.
var ErrBusy = errors.New("media: session busy")

// ErrClosed means the Session was closed.
var ErrClosed = errors.New("media: session closed")

// ErrNoRTP means no RTP came from the caller within the time WaitRTP
// allowed.
var ErrNoRTP = errors.New("media: no RTP from the caller")

const (
	// maxReadErrors ends the reader after this many failed reads in a row
	// (a broken socket); the recording then stops for lack of RTP.
	maxReadErrors = 100
	// readBuffer holds any RTP packet of a call: G.711 at up to 60 ms is 492
	// bytes with its header.
	readBuffer = 2048
)

// Session is the RTP side of one call on one UDP socket. It reads from the
// moment it is made, and the first RTP packet with a negotiated payload type
// fixes the caller's address (symmetric RTP, as rtpengine's strict source or
// Asterisk's rtp_symmetric): the session sends nothing before that packet,
// whatever address the SDP named, and afterwards sends only there and drops
// packets from any other address. An SDP can name anyone; a packet's source
// is where the caller really is, and RTP arriving from it shows the caller
// wants media there. It plays audio (Play) and records (Record); while
// recording and not playing it sends silence at the negotiated packet time,
// so the caller's side and any NAT or SBC on the way see media flowing both
// ways.
//
// A Session owns its reading goroutine and its conn: Close stops the one and
// closes the other. All methods are safe for concurrent use.
type Session struct {
	conn   net.PacketConn
	neg    Negotiated
	frame  int // samples per packet
	closed chan struct{}
	once   sync.Once
	reader chan struct{} // closed when the reading goroutine ended

	heard chan struct{} // closed by the reader when remote is fixed

	mu        sync.Mutex
	remote    netip.AddrPort // the caller's RTP source; zero until its first packet
	lastHeard time.Time      // last RTP from remote
	foreign   int            // packets from other sources, dropped
	rec       *Recorder
	recDone   chan struct{} // closed by the reader when rec ends by itself

	recording func() // test hook: called once a recording takes packets

	sendMu   sync.Mutex
	playing  bool
	started  bool
	ssrc     uint32
	seq      uint16
	lastTS   uint32
	nextTS   uint32
	lastSent time.Time
	sent     int
	packet   []byte
}

// NewSession starts the RTP side of a call on conn, as negotiated by Answer.
// The session owns conn from now on.
func NewSession(conn net.PacketConn, neg Negotiated) *Session {
	if neg.Ptime <= 0 {
		neg.Ptime = DefaultPtime
	}
	if neg.Codec.Encoding == 0 {
		neg.Codec = Codec{Encoding: PCMU}
	}
	s := &Session{
		conn:   conn,
		neg:    neg,
		frame:  durationSamples(neg.Ptime),
		closed: make(chan struct{}),
		reader: make(chan struct{}),
		heard:  make(chan struct{}),
		ssrc:   rand.Uint32(),
		seq:    uint16(rand.Uint32()),
		nextTS: rand.Uint32(),
	}
	s.packet = make([]byte, 12, 12+s.frame)
	go s.read()
	return s
}

// Close stops the session: Play and Record return, the socket closes (its
// port returns to its range) and the reading goroutine ends before Close
// returns.
func (s *Session) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		err = s.conn.Close()
	})
	<-s.reader
	return err
}

// Remote returns where the session sends: the source of the caller's first
// RTP packet, or the zero AddrPort before one arrived.
func (s *Session) Remote() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remote
}

// Heard is closed once the caller's first RTP packet has arrived: from then
// on the session sends, to where that packet came from.
func (s *Session) Heard() <-chan struct{} { return s.heard }

// WaitRTP waits for the caller's first RTP packet (Heard). It returns nil
// once it has arrived, ErrNoRTP when none did within timeout (at most
// DefaultNoRTPTimeout when timeout is not positive), ctx.Err() when ctx ends
// and ErrClosed when the session closes.
func (s *Session) WaitRTP(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultNoRTPTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.heard:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return ErrClosed
	case <-t.C:
		return ErrNoRTP
	}
}

// Negotiated returns what the session was made with.
func (s *Session) Negotiated() Negotiated { return s.neg }

// SentPackets returns how many RTP packets the session has sent.
func (s *Session) SentPackets() int {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.sent
}

type addrPortReader interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
}

type addrPortWriter interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// read is the session's reading goroutine.
func (s *Session) read() {
	defer close(s.reader)
	buf := make([]byte, readBuffer)
	fast, _ := s.conn.(addrPortReader)
	for errs := 0; errs < maxReadErrors; {
		var (
			n    int
			from netip.AddrPort
			err  error
		)
		if fast != nil {
			n, from, err = fast.ReadFromUDPAddrPort(buf)
		} else {
			var addr net.Addr
			n, addr, err = s.conn.ReadFrom(buf)
			if ua, ok := addr.(*net.UDPAddr); ok {
				from = ua.AddrPort()
			}
		}
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			errs++
			continue
		}
		errs = 0
		s.handle(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), time.Now())
	}
}

// handle takes one datagram from the socket.
func (s *Session) handle(b []byte, from netip.AddrPort, now time.Time) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return
	}
	pt := b[1] & 0x7F
	if pt != s.neg.Codec.PayloadType && (s.neg.DTMFPayloadType == 0 || pt != s.neg.DTMFPayloadType) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.remote.IsValid():
		if !from.IsValid() {
			return
		}
		s.remote = from
		close(s.heard) // once: remote is never unset
	case from != s.remote:
		// Never moves: a packet from elsewhere, however long the caller has
		// been quiet, would otherwise turn our stream towards anyone.
		s.foreign++
		return
	}
	s.lastHeard = now
	if s.rec != nil && s.rec.Reason() == 0 && s.rec.Write(b) != 0 {
		close(s.recDone)
	}
}

// Record records the caller until the recording ends by itself (#, maximum
// length, silence), no RTP arrives for opts.NoRTPTimeout (StopNoRTP), or ctx
// ends or the session closes (StopHangup); see StopReason. The error is
// ErrBusy when a recording is already running, ErrClosed after Close;
// otherwise it is nil and the Recording holds what was recorded, however it
// ended.
func (s *Session) Record(ctx context.Context, opts RecordOptions) (Recording, error) {
	opts = opts.withDefaults()
	select {
	case <-s.closed:
		return Recording{}, ErrClosed
	default:
	}
	rec := NewRecorder(s.neg, opts)
	done := make(chan struct{})
	s.mu.Lock()
	if s.rec != nil {
		s.mu.Unlock()
		return Recording{}, ErrBusy
	}
	s.rec, s.recDone = rec, done
	s.mu.Unlock()
	start := time.Now()
	if s.recording != nil {
		s.recording()
	}

	var (
		timer *time.Timer
		noRTP <-chan time.Time
	)
	if opts.NoRTPTimeout > 0 {
		timer = time.NewTimer(opts.NoRTPTimeout)
		defer timer.Stop()
		noRTP = timer.C
	}
	tick := time.NewTicker(s.neg.Ptime)
	defer tick.Stop()
	silence := make([]byte, s.frame)
	for i := range silence {
		silence[i] = s.neg.Codec.Encoding.silence()
	}
	var reason StopReason
loop:
	for {
		select {
		case <-ctx.Done():
			reason = StopHangup
			break loop
		case <-s.closed:
			reason = StopHangup
			break loop
		case <-done:
			break loop
		case <-tick.C:
			s.sendSilence(silence)
		case <-noRTP:
			s.mu.Lock()
			last := s.lastHeard
			s.mu.Unlock()
			if last.Before(start) {
				last = start
			}
			wait := opts.NoRTPTimeout - time.Since(last)
			if wait <= 0 {
				reason = StopNoRTP
				break loop
			}
			timer.Reset(wait)
		}
	}
	s.mu.Lock()
	result := rec.Stop(reason)
	s.rec, s.recDone = nil, nil
	s.mu.Unlock()
	return result, nil
}

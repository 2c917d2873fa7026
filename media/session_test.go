package media

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// leakCheck fails the test when goroutines outlive it. Goroutine exits
// cannot be awaited, so it polls, bounded.
func leakCheck(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		for range 500 {
			if runtime.NumGoroutine() <= base {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
	})
}

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c net.PacketConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// recordAsync starts s.Record and returns once it takes packets.
func recordAsync(t *testing.T, ctx context.Context, s *Session, opts RecordOptions) <-chan Recording {
	t.Helper()
	started := make(chan struct{})
	s.recording = func() { close(started) }
	out := make(chan Recording, 1)
	go func() {
		rec, err := s.Record(ctx, opts)
		if err != nil {
			t.Errorf("record: %v", err)
		}
		out <- rec
	}()
	select {
	case <-started:
	case rec := <-out:
		t.Fatalf("record returned at once: %+v", rec.Reason)
	}
	return out
}

// readRTP reads one RTP packet from c, failing after a generous deadline.
func readRTP(t *testing.T, c *net.UDPConn) (rtp.Packet, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var p rtp.Packet
	if err := p.Unmarshal(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return p, from
}

// trimSilence drops leading and trailing silence: zeros, or ±8, A-law's
// nearest to zero.
func trimSilence(x []int16) []int16 {
	quiet := func(v int16) bool { return v >= -8 && v <= 8 }
	for len(x) > 0 && quiet(x[0]) {
		x = x[1:]
	}
	for len(x) > 0 && quiet(x[len(x)-1]) {
		x = x[:len(x)-1]
	}
	return x
}

// One session plays a WAV file, the other records it over loopback: the
// recording is the G.711 round trip of the file, sample for sample.
func TestSessionLoopback(t *testing.T) {
	leakCheck(t)
	for _, enc := range []Encoding{PCMU, PCMA} {
		t.Run(enc.String(), func(t *testing.T) {
			var wavFile bytes.Buffer
			if err := EncodeWAV(&wavFile, DefaultGreeting()[2000:10000]); err != nil {
				t.Fatal(err)
			}
			sent, err := DecodeWAV(bytes.NewReader(wavFile.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			ca, cb := listen(t), listen(t)
			neg := Negotiated{Codec: Codec{Encoding: enc, PayloadType: map[Encoding]uint8{PCMU: 0, PCMA: 8}[enc]}, Ptime: DefaultPtime, Send: true, Receive: true}
			negA, negB := neg, neg
			negA.Remote = addrOf(cb)
			negB.Remote = netip.MustParseAddrPort("127.0.0.1:9") // wrong on purpose: b must learn a's address
			a, b := NewSession(ca, negA), NewSession(cb, negB)
			defer a.Close()
			defer b.Close()
			prime(t, cb, a) // a sends nowhere until it heard from b

			ctx := context.Background()
			recorded := recordAsync(t, ctx, b, RecordOptions{NoRTPTimeout: 300 * time.Millisecond, SilenceTimeout: -1})
			if err := a.Play(ctx, sent); err != nil {
				t.Fatal(err)
			}
			rec := <-recorded
			if rec.Reason != StopNoRTP {
				t.Errorf("reason %v", rec.Reason)
			}
			want := trimSilence(roundTrip(enc, sent))
			got := trimSilence(rec.Samples)
			if i := firstDiff(got, want); i >= 0 {
				t.Fatalf("recording differs at %d (len %d, want %d)", i, len(got), len(want))
			}
			if rec.Stats.Lost != 0 || rec.Stats.Packets != 50 {
				t.Errorf("stats %+v", rec.Stats)
			}
			if b.Remote() != addrOf(ca) {
				t.Errorf("b sends to %v, want a's %v", b.Remote(), addrOf(ca))
			}
			if b.SentPackets() == 0 {
				t.Error("b sent no silence while recording")
			}
		})
	}
}

// The recorder's side sends back to where the caller's RTP comes from, with
// proper headers: one SSRC, consecutive numbers, timestamps by 160, a marker
// on the first packet only.
func TestSessionSymmetricRTP(t *testing.T) {
	leakCheck(t)
	caller, cb := listen(t), listen(t)
	neg := pcmu
	neg.Remote = netip.MustParseAddrPort("127.0.0.1:9")
	s := NewSession(cb, neg)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	recorded := recordAsync(t, ctx, s, RecordOptions{})
	payload := PCMU.Encode(nil, speech(160, 0))
	if _, err := caller.WriteToUDPAddrPort(rtpPacket(t, 0, 1, 0, ssrcA, true, payload), addrOf(cb)); err != nil {
		t.Fatal(err)
	}
	var first rtp.Packet
	for i := range 5 {
		p, from := readRTP(t, caller)
		if from != addrOf(cb) || p.PayloadType != 0 || len(p.Payload) != 160 || p.Payload[0] != 0xFF {
			t.Fatalf("packet %d from %v: %v", i, from, p.Header)
		}
		if i == 0 {
			first = p
		} else if p.SSRC != first.SSRC || p.SequenceNumber != first.SequenceNumber+uint16(i) ||
			p.Timestamp != first.Timestamp+uint32(160*i) || p.Marker {
			t.Fatalf("packet %d: %v after %v", i, p.Header, first.Header)
		}
	}
	if !first.Marker {
		t.Error("first packet lacks the marker")
	}
	cancel()
	if rec := <-recorded; rec.Reason != StopHangup || len(rec.Samples) != 160 {
		t.Fatalf("got %v with %d samples", rec.Reason, len(rec.Samples))
	}
}

func TestSessionPacketHeaders(t *testing.T) {
	leakCheck(t)
	remote, c := listen(t), listen(t)
	neg := pcmu
	neg.Ptime = 30 * time.Millisecond
	neg.Remote = addrOf(remote)
	s := NewSession(c, neg)
	defer s.Close()
	prime(t, remote, s)
	if err := s.Play(context.Background(), speech(2000, 0)); err != nil { // 8⅓ packets of 240
		t.Fatal(err)
	}
	var ps []rtp.Packet
	for range 9 {
		p, _ := readRTP(t, remote)
		ps = append(ps, p)
	}
	for i, p := range ps {
		if len(p.Payload) != 240 || p.Marker != (i == 0) || p.SequenceNumber != ps[0].SequenceNumber+uint16(i) || p.Timestamp != ps[0].Timestamp+uint32(240*i) {
			t.Fatalf("packet %d: %v (%d bytes)", i, p.Header, len(p.Payload))
		}
	}
	if last := ps[8].Payload; last[79] == 0xFF || !bytes.Equal(last[80:], bytes.Repeat([]byte{0xFF}, 160)) {
		t.Error("the last packet is not padded with silence")
	}
	// A new talkspurt after a pause: marker, and the timestamp jumps by the
	// pause. The clock is the argument, so no waiting.
	s.sendMu.Lock()
	t0 := s.lastSent
	s.sendLocked(make([]byte, 240), t0.Add(100*time.Millisecond), false)
	s.sendLocked(make([]byte, 240), t0.Add(1100*time.Millisecond), true)
	s.sendMu.Unlock()
	next, _ := readRTP(t, remote)
	spurt, _ := readRTP(t, remote)
	if next.Marker || next.Timestamp != ps[8].Timestamp+240 {
		t.Errorf("continuing packet: %v", next.Header)
	}
	if !spurt.Marker || spurt.Timestamp != next.Timestamp+8000 || spurt.SequenceNumber != next.SequenceNumber+1 {
		t.Errorf("talkspurt packet: %v after %v", spurt.Header, next.Header)
	}
}

func TestSessionStops(t *testing.T) {
	leakCheck(t)
	payload := PCMU.Encode(nil, speech(160, 0))
	t.Run("no RTP", func(t *testing.T) {
		s := NewSession(listen(t), pcmu)
		defer s.Close()
		start := time.Now()
		rec, err := s.Record(context.Background(), RecordOptions{NoRTPTimeout: 100 * time.Millisecond})
		if err != nil || rec.Reason != StopNoRTP || time.Since(start) < 100*time.Millisecond || rec.IsMessage() {
			t.Fatalf("%v %v after %v", rec.Reason, err, time.Since(start))
		}
	})
	t.Run("no RTP after some", func(t *testing.T) {
		caller, c := listen(t), listen(t)
		s := NewSession(c, pcmu)
		defer s.Close()
		recorded := recordAsync(t, context.Background(), s, RecordOptions{NoRTPTimeout: 150 * time.Millisecond})
		for i := range 10 {
			caller.WriteToUDPAddrPort(rtpPacket(t, 0, uint16(i), uint32(160*i), ssrcA, false, payload), addrOf(c))
		}
		rec := <-recorded
		if rec.Reason != StopNoRTP || len(rec.Samples) != 1600 {
			t.Fatalf("%v with %d samples", rec.Reason, len(rec.Samples))
		}
	})
	t.Run("hash over the wire", func(t *testing.T) {
		caller, c := listen(t), listen(t)
		s := NewSession(c, pcmu)
		defer s.Close()
		recorded := recordAsync(t, context.Background(), s, RecordOptions{})
		for i := range 10 {
			caller.WriteToUDPAddrPort(rtpPacket(t, 0, uint16(i), uint32(160*i), ssrcA, false, payload), addrOf(c))
		}
		for i := range 3 {
			caller.WriteToUDPAddrPort(rtpPacket(t, 101, uint16(10+i), 1600, ssrcA, i == 0, dtmfPayload(11, i == 2, uint16(160*(i+1)))), addrOf(c))
		}
		rec := <-recorded
		if rec.Reason != StopDTMF || rec.Digits != "#" || len(rec.Samples) != 1600 {
			t.Fatalf("%v %q with %d samples", rec.Reason, rec.Digits, len(rec.Samples))
		}
	})
	t.Run("context ends: hangup", func(t *testing.T) {
		s := NewSession(listen(t), pcmu)
		defer s.Close()
		ctx, cancel := context.WithCancel(context.Background())
		recorded := recordAsync(t, ctx, s, RecordOptions{})
		cancel()
		if rec := <-recorded; rec.Reason != StopHangup {
			t.Fatalf("%v", rec.Reason)
		}
	})
	t.Run("close ends play and record", func(t *testing.T) {
		s := NewSession(listen(t), pcmu)
		recorded := recordAsync(t, context.Background(), s, RecordOptions{})
		played := make(chan error, 1)
		go func() { played <- s.Play(context.Background(), make([]int16, 8000*60)) }()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if rec := <-recorded; rec.Reason != StopHangup {
			t.Fatalf("%v", rec.Reason)
		}
		if err := <-played; err != nil && !errors.Is(err, ErrClosed) {
			t.Fatalf("play: %v", err)
		}
		if _, err := s.Record(context.Background(), RecordOptions{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("record after close: %v", err)
		}
		s.Close()
	})
}

func TestSessionBusy(t *testing.T) {
	leakCheck(t)
	s := NewSession(listen(t), pcmu)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recorded := recordAsync(t, ctx, s, RecordOptions{})
	if _, err := s.Record(ctx, RecordOptions{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second record: %v", err)
	}
	played := make(chan error, 1)
	go func() { played <- s.Play(ctx, make([]int16, 8000*60)) }()
	// Wait until the first Play holds the player.
	for range 1000 {
		s.sendMu.Lock()
		p := s.playing
		s.sendMu.Unlock()
		if p {
			break
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	if err := s.Play(ctx, make([]int16, 160)); !errors.Is(err, ErrBusy) {
		t.Fatalf("second play: %v", err)
	}
	cancel()
	if err := <-played; !errors.Is(err, context.Canceled) {
		t.Fatalf("play: %v", err)
	}
	<-recorded
}

// After the caller's first packet, packets from elsewhere are dropped, and
// stay dropped however long the caller has been quiet: nobody else turns
// the session's stream towards themselves.
func TestSessionForeignSource(t *testing.T) {
	leakCheck(t)
	caller, intruder, c := listen(t), listen(t), listen(t)
	s := NewSession(c, pcmu)
	defer s.Close()
	prime(t, caller, s)
	recorded := recordAsync(t, context.Background(), s, RecordOptions{NoRTPTimeout: 150 * time.Millisecond})
	voice := PCMU.Encode(nil, speech(160, 0))
	noise := PCMU.Encode(nil, speech(160, 80))
	for i := range 10 {
		caller.WriteToUDPAddrPort(rtpPacket(t, 0, uint16(2+i), uint32(160*(1+i)), 0x9e1d, false, voice), addrOf(c))
		intruder.WriteToUDPAddrPort(rtpPacket(t, 0, uint16(i), uint32(160*i), ssrcB, false, noise), addrOf(c))
	}
	rec := <-recorded
	if rec.Stats.Streams != 1 || rec.Stats.Packets != 10 || s.Remote() != addrOf(caller) {
		t.Fatalf("stats %+v remote %v", rec.Stats, s.Remote())
	}
	s.mu.Lock()
	foreign := s.foreign
	s.mu.Unlock()
	if foreign != 10 {
		t.Errorf("%d foreign packets, want 10", foreign)
	}
	// The caller has been quiet a minute: still not the intruder's.
	s.handle(rtpPacket(t, 0, 11, 1760, ssrcB, false, noise), addrOf(intruder), time.Now().Add(time.Minute))
	if s.Remote() != addrOf(caller) {
		t.Errorf("remote %v after a packet from elsewhere, want the caller's %v", s.Remote(), addrOf(caller))
	}
}

// TestSessionSendsOnlyAfterRTP: an SDP that names a third party gets it no
// packet, not while playing nor while recording; the caller's first RTP
// packet, from elsewhere, decides where everything goes.
func TestSessionSendsOnlyAfterRTP(t *testing.T) {
	leakCheck(t)
	victim, caller, c := listen(t), listen(t), listen(t)
	neg := pcmu
	neg.Remote = addrOf(victim) // what the SDP said
	s := NewSession(c, neg)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Play(ctx, speech(800, 0)); err != nil { // 5 packets' time
		t.Fatal(err)
	}
	if rec, _ := s.Record(ctx, RecordOptions{NoRTPTimeout: 100 * time.Millisecond}); rec.Reason != StopNoRTP {
		t.Fatalf("recording without RTP ended by %v", rec.Reason)
	}
	if n := s.SentPackets(); n != 0 || s.Remote().IsValid() {
		t.Fatalf("sent %d packets before any RTP came, remote %v", n, s.Remote())
	}
	if err := s.WaitRTP(ctx, 50*time.Millisecond); !errors.Is(err, ErrNoRTP) {
		t.Fatalf("WaitRTP without RTP: %v", err)
	}

	waited := make(chan error, 1)
	go func() { waited <- s.WaitRTP(ctx, 5*time.Second) }()
	prime(t, caller, s)
	if err := <-waited; err != nil {
		t.Fatalf("WaitRTP: %v", err)
	}
	if err := s.Play(ctx, speech(320, 0)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, from := readRTP(t, caller); from != addrOf(c) {
			t.Fatalf("packet from %v", from)
		}
	}
	// Everything the session sent went to the caller; the victim's socket
	// holds nothing.
	if n := queued(victim); n != 0 {
		t.Fatalf("the SDP's address got %d packets", n)
	}
}

// queued reads what waits on c and returns how many datagrams it was.
// Loopback delivers within sendto, so whatever was sent to c is there: the
// short deadline only ends the read of an empty queue.
func queued(c *net.UDPConn) int {
	buf := make([]byte, 2048)
	n := 0
	for ; n < 10000; n++ {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
	}
	return n
}

func TestSessionWithoutSend(t *testing.T) {
	leakCheck(t)
	remote, c := listen(t), listen(t)
	neg := pcmu
	neg.Remote, neg.Send = addrOf(remote), false
	s := NewSession(c, neg)
	defer s.Close()
	prime(t, remote, s)
	if err := s.Play(context.Background(), make([]int16, 480)); err != nil {
		t.Fatal(err)
	}
	if s.SentPackets() != 0 {
		t.Fatalf("sent %d packets to a caller who asked for none", s.SentPackets())
	}
}

func TestStopReasonNames(t *testing.T) {
	var names []string
	for r := range StopReason(7) {
		names = append(names, r.String())
	}
	if got := strings.Join(names, ","); got != "recording,hangup,dtmf,max-length,silence,no-rtp,unknown" {
		t.Fatal(got)
	}
}

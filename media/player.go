package media

import (
	"context"
	"math"
	"net"
	"time"

	"github.com/pion/rtp"
)

// maxBurst bounds how many packets Play sends at once to catch up after a
// stall; it then catches up over the following ticks.
const maxBurst = 3

// Play sends samples (8 kHz mono) to the caller as RTP, one packet per
// negotiated packet time, paced by a ticker; the last packet is padded with
// silence. It returns when everything was sent (nil), ctx ended (ctx.Err()),
// the session closed (ErrClosed) or another Play runs (ErrBusy). When the
// caller did not ask for our audio (Negotiated.Send false) or its first RTP
// packet has not arrived yet (see Session), packets are paced but not sent.
//
// Packets carry one SSRC for the whole session, consecutive sequence numbers
// and timestamps that follow the audio, however late a packet leaves; the
// marker bit is set on the first packet of a talkspurt, that is when a Play
// starts more than two packet times after the last packet sent, and the
// timestamp then jumps by the time that passed.
func (s *Session) Play(ctx context.Context, samples []int16) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.sendMu.Lock()
	if s.playing {
		s.sendMu.Unlock()
		return ErrBusy
	}
	s.playing = true
	s.sendMu.Unlock()
	defer func() {
		s.sendMu.Lock()
		s.playing = false
		s.sendMu.Unlock()
	}()

	enc := s.neg.Codec.Encoding
	payload := enc.Encode(make([]byte, 0, len(samples)+s.frame), samples)
	for len(payload)%s.frame != 0 {
		payload = append(payload, enc.silence())
	}
	frames := len(payload) / s.frame
	if frames == 0 {
		return nil
	}
	tick := time.NewTicker(s.neg.Ptime)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for {
		due := min(frames, int(time.Since(start)/s.neg.Ptime)+1)
		for burst := 0; sent < due && burst < maxBurst; burst++ {
			s.sendMu.Lock()
			s.sendLocked(payload[sent*s.frame:(sent+1)*s.frame], time.Now(), sent == 0)
			s.sendMu.Unlock()
			sent++
		}
		if sent == frames {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return ErrClosed
		case <-tick.C:
		}
	}
}

// sendSilence sends one packet of silence unless Play is sending.
func (s *Session) sendSilence(payload []byte) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if !s.playing {
		s.sendLocked(payload, time.Now(), true)
	}
}

// sendLocked sends one RTP packet; s.sendMu is held. A packet that may
// start a talkspurt (the first of a Play, any silence packet) does when more
// than two packet times passed since the last one: it gets the marker and a
// timestamp advanced by the time that passed. Other packets continue the
// timestamps whatever the delay, so a stalled sender never opens gaps in its
// own audio.
func (s *Session) sendLocked(payload []byte, now time.Time, mayStart bool) {
	ts := s.nextTS
	marker := !s.started
	if s.started && mayStart {
		if gap := now.Sub(s.lastSent); gap > 2*s.neg.Ptime {
			marker = true
			ts = s.lastTS + uint32(durationSamples(gap))
		}
	}
	s.started = true
	s.lastTS, s.nextTS, s.lastSent = ts, ts+uint32(len(payload)), now
	h := rtp.Header{
		Version:        2,
		Marker:         marker,
		PayloadType:    s.neg.Codec.PayloadType,
		SequenceNumber: s.seq,
		Timestamp:      ts,
		SSRC:           s.ssrc,
	}
	s.seq++
	if !s.neg.Send {
		return
	}
	s.mu.Lock()
	remote := s.remote
	s.mu.Unlock()
	if !remote.IsValid() {
		return
	}
	n, err := h.MarshalTo(s.packet[:cap(s.packet)])
	if err != nil {
		return
	}
	pkt := append(s.packet[:n], payload...)
	if w, ok := s.conn.(addrPortWriter); ok {
		_, err = w.WriteToUDPAddrPort(pkt, remote)
	} else {
		_, err = s.conn.WriteTo(pkt, net.UDPAddrFromAddrPort(remote))
	}
	if err == nil {
		s.sent++
	}
	s.packet = pkt[:0]
}

// Beep returns the tone played before recording: 1 kHz for 300 ms at about
// -12 dBFS, with 5 ms ramps so it starts and ends without a click.
func Beep() []int16 { return tone(1000, 300*time.Millisecond, 8000) }

// tone returns a sine of freq Hz, d long, of peak amplitude amp, with 5 ms
// raised-cosine ramps.
func tone(freq float64, d time.Duration, amp float64) []int16 {
	n := durationSamples(d)
	ramp := min(durationSamples(5*time.Millisecond), n/2)
	out := make([]int16, n)
	for i := range out {
		g := 1.0
		if k := min(i, n-1-i); k < ramp {
			g = 0.5 - 0.5*math.Cos(math.Pi*float64(k)/float64(ramp))
		}
		out[i] = int16(math.Round(amp * g * math.Sin(2*math.Pi*freq*float64(i)/SampleRate)))
	}
	return out
}

package media

import (
	"math"
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// pcmu is the negotiation most tests use: PCMU on 0, telephone-event on 101.
var pcmu = Negotiated{Codec: Codec{Encoding: PCMU, PayloadType: 0}, DTMFPayloadType: 101, Ptime: DefaultPtime, Send: true, Receive: true}

// rtpPacket builds a raw RTP packet.
func rtpPacket(t testing.TB, pt uint8, seq uint16, ts, ssrc uint32, marker bool, payload []byte) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc, Marker: marker}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dtmfPayload builds a telephone-event payload.
func dtmfPayload(code uint8, end bool, duration uint16) []byte {
	flags := byte(10) // volume -10 dBm0
	if end {
		flags |= 0x80
	}
	return []byte{code, flags, byte(duration >> 8), byte(duration)}
}

// speech returns n samples loud enough to be voice: a sum of two sines.
func speech(n int, phase int) []int16 {
	out := make([]int16, n)
	for i := range out {
		x := float64(i + phase)
		out[i] = int16(6000*math.Sin(2*math.Pi*440*x/SampleRate) + 3000*math.Sin(2*math.Pi*1210*x/SampleRate))
	}
	return out
}

// roundTrip returns what samples become after G.711 encoding and decoding.
func roundTrip(enc Encoding, samples []int16) []int16 {
	return enc.Decode(nil, enc.Encode(nil, samples))
}

// stream cuts an encoded signal into packets of the given sizes (in
// samples, cycling), numbering them from seq0/ts0.
type wirePacket struct {
	seq     uint16
	ts      uint32
	payload []byte
	start   int // sample offset in the signal
}

func packetize(encoded []byte, sizes []int, seq0 uint16, ts0 uint32) []wirePacket {
	var out []wirePacket
	for off, k := 0, 0; off < len(encoded); k++ {
		n := min(sizes[k%len(sizes)], len(encoded)-off)
		out = append(out, wirePacket{seq: seq0 + uint16(k), ts: ts0 + uint32(off), payload: encoded[off : off+n], start: off})
		off += n
	}
	return out
}

// equalSamples reports the first index where a and b differ, or -1.
func firstDiff(a, b []int16) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// prime sends s one packet of silence from c, as a caller's first RTP
// packet, and returns once s has taken c's address as the caller's.
func prime(t testing.TB, c *net.UDPConn, s *Session) {
	t.Helper()
	payload := make([]byte, s.frame)
	for i := range payload {
		payload[i] = s.neg.Codec.Encoding.silence()
	}
	to := s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := c.WriteToUDPAddrPort(rtpPacket(t, s.neg.Codec.PayloadType, 1, 0, 0x9e1d, true, payload), to); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Heard():
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not take the caller's first packet")
	}
}

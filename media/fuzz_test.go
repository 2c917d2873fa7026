package media

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// FuzzAnswer: no offer makes Answer panic, and every answer it gives is
// itself an offer that settles the same codec.
func FuzzAnswer(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "sdp", "*.sdp"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	local := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, offer []byte) {
		answer, neg, err := Answer(offer, local, 20000)
		if err != nil {
			return
		}
		if neg.Codec.Encoding != PCMU && neg.Codec.Encoding != PCMA {
			t.Fatalf("codec %+v", neg.Codec)
		}
		_, back, err := Answer(answer, local, 20002)
		if err != nil || back.Codec != neg.Codec || back.DTMFPayloadType != neg.DTMFPayloadType {
			t.Fatalf("answer does not read back: %v %+v vs %+v\n%s", err, back, neg, answer)
		}
	})
}

// FuzzRecorder: no packet sequence makes the recorder panic or exceed its
// bounds. The input is read as records of six bytes that build mostly-valid
// RTP (so the fuzzer reaches the timeline code), with raw bytes mixed in.
func FuzzRecorder(f *testing.F) {
	f.Add([]byte{0, 1, 0, 160, 160, 0x55, 0, 1, 0, 160, 160, 0x55, 0, 2, 0, 0, 160, 0x10})
	f.Add([]byte{0, 1, 0, 160, 240, 0x55, 1, 1, 0x7f, 0xff, 160, 0x55, 2, 1, 0, 0, 4, 11, 0x12, 1, 0, 0, 4, 11})
	f.Add([]byte{4, 0, 0, 0, 12, 0x80, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{0, 0xF0, 0xFF, 0x00, 200, 3}, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := RecordOptions{MaxLength: 2 * time.Second, SilenceTimeout: 500 * time.Millisecond, Jitter: 40 * time.Millisecond}
		r := NewRecorder(pcmu, opts)
		r.Write(data) // the whole input as one datagram
		var (
			seq  uint16
			ts   uint32
			pkt  rtp.Packet
			buf  []byte
			more = data
		)
		for len(more) >= 6 {
			flags, seqDelta, tsDelta, n, fill := more[0], int8(more[1]), int16(binary.BigEndian.Uint16(more[2:4])), int(more[4]), more[5]
			more = more[6:]
			if flags&4 != 0 { // raw bytes
				k := min(n, len(more))
				r.Write(more[:k])
				more = more[k:]
				continue
			}
			seq += uint16(int16(seqDelta))
			ts += uint32(int32(tsDelta))
			pkt.Header = rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, SSRC: ssrcA, Marker: flags&8 != 0}
			if flags&1 != 0 {
				pkt.SSRC = ssrcB
			}
			if flags&2 != 0 {
				pkt.PayloadType = 101
				pkt.Payload = []byte{fill & 15, fill & 0x80, 0, byte(n)}
			} else {
				buf = buf[:0]
				for i := range n {
					buf = append(buf, fill+byte(i)*byte(flags>>4))
				}
				pkt.Payload = buf
			}
			if r.WritePacket(&pkt) != 0 {
				break
			}
		}
		rec := r.Stop(StopHangup)
		if rec.Duration() > opts.MaxLength || rec.Voiced > rec.Duration() || rec.Reason == 0 {
			t.Fatalf("duration %v voiced %v reason %v", rec.Duration(), rec.Voiced, rec.Reason)
		}
		s := rec.Stats
		if s.Packets < 0 || s.Lost < 0 || s.Late < 0 || s.Duplicates < 0 || s.Ignored < 0 || len(rec.Digits) > maxDigits {
			t.Fatalf("stats %+v digits %q", s, rec.Digits)
		}
	})
}

// FuzzDecodeWAV: no file makes DecodeWAV panic.
func FuzzDecodeWAV(f *testing.F) {
	f.Add(makeWAV(wavePCM, 8000, 16, sineFrames(8000, 1, 100, 440, 8000)))
	f.Add(makeWAV(wavePCM, 44100, 8, sineFrames(44100, 2, 100, 440, 8000)))
	f.Add(makeWAV(waveALaw, 8000, 8, sineFrames(8000, 1, 100, 440, 8000)))
	f.Add(greetingWAV[:200])
	f.Fuzz(func(t *testing.T, file []byte) {
		samples, err := DecodeWAV(bytes.NewReader(file))
		if err == nil && len(samples) == 0 {
			t.Fatal("no error and no samples")
		}
	})
}

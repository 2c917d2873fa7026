package media

import (
	"slices"
	"testing"
	"time"
)

const ssrcA, ssrcB = 0x11111111, 0x22222222

// feed writes packets to a recorder and stops it with StopHangup unless it
// stopped by itself; it checks Write's return value against Reason.
func feed(t *testing.T, r *Recorder, packets [][]byte) Recording {
	t.Helper()
	for i, p := range packets {
		got := r.Write(p)
		if got != r.Reason() {
			t.Fatalf("packet %d: Write returned %v, Reason %v", i, got, r.Reason())
		}
	}
	return r.Stop(StopHangup)
}

func TestRecorderTimeline(t *testing.T) {
	signal := speech(8000, 0) // 1 s
	encoded := PCMU.Encode(nil, signal)
	want := roundTrip(PCMU, signal)
	p20 := packetize(encoded, []int{160}, 1000, 50000)
	mixed := packetize(encoded, []int{160, 240, 240, 160}, 1000, 50000)
	raw := func(t *testing.T, ps []wirePacket, ssrc uint32) [][]byte {
		var out [][]byte
		for _, p := range ps {
			out = append(out, rtpPacket(t, 0, p.seq, p.ts, ssrc, false, p.payload))
		}
		return out
	}
	zeroed := func(ranges ...[2]int) []int16 {
		w := slices.Clone(want)
		for _, r := range ranges {
			clear(w[r[0]:r[1]])
		}
		return w
	}
	tests := []struct {
		name    string
		packets func(t *testing.T) [][]byte
		want    []int16
		check   func(t *testing.T, rec Recording)
	}{
		{
			name:    "in order, 20 ms",
			packets: func(t *testing.T) [][]byte { return raw(t, p20, ssrcA) },
			want:    want,
			check: func(t *testing.T, rec Recording) {
				if rec.Stats.Packets != 50 || rec.Stats.Lost != 0 || rec.Stats.Streams != 1 {
					t.Errorf("stats %+v", rec.Stats)
				}
			},
		},
		{
			name:    "20 and 30 ms mixed",
			packets: func(t *testing.T) [][]byte { return raw(t, mixed, ssrcA) },
			want:    want,
		},
		{
			name: "reordered by pairs and one packet three places late",
			packets: func(t *testing.T) [][]byte {
				ps := slices.Clone(p20)
				for i := 0; i+1 < len(ps); i += 2 {
					ps[i], ps[i+1] = ps[i+1], ps[i]
				}
				p := ps[10]
				ps = slices.Delete(ps, 10, 11)
				ps = slices.Insert(ps, 13, p)
				return raw(t, ps, ssrcA)
			},
			want: want,
			check: func(t *testing.T, rec Recording) {
				if rec.Stats.Late != 0 || rec.Stats.Lost != 0 {
					t.Errorf("stats %+v", rec.Stats)
				}
			},
		},
		{
			name: "loss leaves silence of the lost length",
			packets: func(t *testing.T) [][]byte {
				ps := slices.Clone(mixed)
				ps = slices.Delete(ps, 5, 7) // a 30 ms and a 20 ms packet (sizes 160,240,240,160 → #5 is 240, #6 is 240)
				return raw(t, ps, ssrcA)
			},
			want: zeroed([2]int{mixed[5].start, mixed[7].start}),
			check: func(t *testing.T, rec Recording) {
				if rec.Stats.Lost != 2 {
					t.Errorf("lost %d, want 2", rec.Stats.Lost)
				}
			},
		},
		{
			name: "duplicates are dropped",
			packets: func(t *testing.T) [][]byte {
				var out [][]byte
				for _, b := range raw(t, p20, ssrcA) {
					out = append(out, b, b)
				}
				return out
			},
			want: want,
			check: func(t *testing.T, rec Recording) {
				if rec.Stats.Duplicates != 50 || rec.Stats.Packets != 50 {
					t.Errorf("stats %+v", rec.Stats)
				}
			},
		},
		{
			name: "first packet arrives second",
			packets: func(t *testing.T) [][]byte {
				ps := slices.Clone(p20)
				ps[0], ps[1] = ps[1], ps[0]
				return raw(t, ps, ssrcA)
			},
			want: want,
		},
		{
			name: "first three packets reversed",
			packets: func(t *testing.T) [][]byte {
				ps := slices.Clone(p20)
				ps[0], ps[2] = ps[2], ps[0]
				return raw(t, ps, ssrcA)
			},
			want: want,
		},
		{
			name: "packet later than the jitter window is dropped",
			packets: func(t *testing.T) [][]byte {
				ps := slices.Clone(p20)
				p := ps[5]
				ps = slices.Delete(ps, 5, 6)
				ps = slices.Insert(ps, 15, p) // 200 ms late
				return raw(t, ps, ssrcA)
			},
			want: zeroed([2]int{800, 960}),
			check: func(t *testing.T, rec Recording) {
				if rec.Stats.Late != 1 {
					t.Errorf("late %d, want 1", rec.Stats.Late)
				}
			},
		},
		{
			name:    "sequence and timestamp wrap",
			packets: func(t *testing.T) [][]byte { return raw(t, packetize(encoded, []int{160}, 65530, 1<<32-400), ssrcA) },
			want:    want,
		},
		{
			name: "SSRC change continues at the end; stragglers dropped",
			packets: func(t *testing.T) [][]byte {
				first := raw(t, p20[:25], ssrcA)
				second := packetize(encoded[4000:], []int{160}, 7, 999)
				out := append(first, raw(t, second[:3], ssrcB)...)
				out = append(out, rtpPacket(t, 0, p20[24].seq, p20[24].ts, ssrcA, false, p20[24].payload)) // straggler
				return append(out, raw(t, second[3:], ssrcB)...)
			},
			want: want,
			check: func(t *testing.T, rec Recording) {
				if rec.Stats.Streams != 2 || rec.Stats.Late != 1 {
					t.Errorf("stats %+v", rec.Stats)
				}
			},
		},
		{
			name: "timestamp jump without a sequence gap restarts the clock",
			packets: func(t *testing.T) [][]byte {
				second := packetize(encoded[4000:], []int{160}, p20[25].seq, 123456789)
				return append(raw(t, p20[:25], ssrcA), raw(t, second, ssrcA)...)
			},
			want: want,
		},
		{
			name: "sequence restart after probation",
			packets: func(t *testing.T) [][]byte {
				second := packetize(encoded[4000:], []int{160}, 40000, 777)
				out := append(raw(t, p20[:25], ssrcA), raw(t, second, ssrcA)...)
				return out
			},
			// The first packet after the jump is on probation and lost; the
			// second continues at the end of the recording.
			want: append(slices.Clone(want[:4000]), want[4160:]...),
			check: func(t *testing.T, rec Recording) {
				if rec.Stats.Ignored != 1 {
					t.Errorf("stats %+v", rec.Stats)
				}
			},
		},
		{
			name: "other payload types and garbage are ignored",
			packets: func(t *testing.T) [][]byte {
				out := raw(t, p20, ssrcA)
				out = slices.Insert(out, 3, rtpPacket(t, 13, 5000, 0, ssrcA, false, []byte{40}), []byte{0x80}, []byte("not rtp at all"))
				return out
			},
			want: want,
			check: func(t *testing.T, rec Recording) {
				if rec.Stats.Ignored != 3 {
					t.Errorf("ignored %d, want 3", rec.Stats.Ignored)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := feed(t, NewRecorder(pcmu, RecordOptions{SilenceTimeout: -1}), tc.packets(t))
			if rec.Reason != StopHangup {
				t.Errorf("reason %v", rec.Reason)
			}
			if i := firstDiff(rec.Samples, tc.want); i >= 0 {
				t.Fatalf("samples differ at %d (len %d, want %d)", i, len(rec.Samples), len(tc.want))
			}
			if tc.check != nil {
				tc.check(t, rec)
			}
		})
	}
}

func TestRecorderDTMF(t *testing.T) {
	signal := speech(4000, 0)
	encoded := PCMU.Encode(nil, signal)
	ps := packetize(encoded, []int{160}, 1, 0)
	r := NewRecorder(pcmu, RecordOptions{})
	for _, p := range ps[:20] {
		if r.Write(rtpPacket(t, 0, p.seq, p.ts, ssrcA, false, p.payload)) != 0 {
			t.Fatal("stopped early")
		}
	}
	seq := ps[19].seq
	event := func(code uint8, ts uint32, end bool, dur uint16) StopReason {
		seq++
		return r.Write(rtpPacket(t, 101, seq, ts, ssrcA, dur == 160, dtmfPayload(code, end, dur)))
	}
	// A "5": updates, then the end packet three times.
	for _, d := range []uint16{160, 320, 480} {
		if event(5, 3200, false, d) != 0 {
			t.Fatal("5 stopped the recording")
		}
	}
	for range 3 {
		event(5, 3200, true, 640)
	}
	// Audio resumes, then "#" whose first packets are lost: its end packet
	// alone is enough, once.
	seq += 2
	for _, p := range ps[22:25] {
		seq++
		r.Write(rtpPacket(t, 0, seq, p.ts, ssrcA, false, p.payload))
	}
	if got := event(11, 4000, true, 800); got != StopDTMF {
		t.Fatalf("after # got %v", got)
	}
	if got := event(11, 4000, true, 800); got != StopDTMF {
		t.Fatalf("retransmission: %v", got)
	}
	rec := r.Stop(StopHangup)
	if rec.Reason != StopDTMF || rec.Digits != "5#" {
		t.Fatalf("reason %v digits %q", rec.Reason, rec.Digits)
	}
	if rec.Duration() != 500*time.Millisecond {
		t.Fatalf("duration %v, want 500ms (audio up to the #)", rec.Duration())
	}
	if d := firstDiff(rec.Samples[:3200], roundTrip(PCMU, signal[:3200])); d >= 0 {
		t.Fatalf("audio differs at %d", d)
	}
	// The DTMF event and its missing audio are silence.
	for i, s := range rec.Samples[3200:3520] {
		if s != 0 {
			t.Fatalf("sample %d = %d during the event", 3200+i, s)
		}
	}
}

func TestRecorderStops(t *testing.T) {
	voice := PCMU.Encode(nil, speech(8000*3, 0))
	quiet := PCMU.Encode(nil, make([]int16, 8000*5))
	tests := []struct {
		name     string
		opts     RecordOptions
		payload  []byte
		jumpAt   int // packet index after which the timestamp jumps by jump
		jump     uint32
		reason   StopReason
		length   time.Duration
		voiced   time.Duration
		message  bool
		stopNear int // the packet index at which Write reports the stop
	}{
		{
			name: "max length", opts: RecordOptions{MaxLength: time.Second},
			payload: voice, reason: StopMaxLength, length: time.Second, voiced: time.Second, message: true, stopNear: 49,
		},
		{
			name: "silence after 1.5 s of voice", opts: RecordOptions{SilenceTimeout: 2 * time.Second},
			payload: append(slices.Clone(voice[:12000]), quiet...), reason: StopSilence,
			length: 2 * time.Second, voiced: 1500 * time.Millisecond, message: true, stopNear: 75 + 100 + 3,
		},
		{
			name: "silence by a gap in timestamps", opts: RecordOptions{SilenceTimeout: 2 * time.Second},
			payload: voice[:16000], jumpAt: 40, jump: 3 * 8000, reason: StopSilence,
			length: 1300 * time.Millisecond, voiced: 800 * time.Millisecond, stopNear: 40,
		},
		{
			name: "half a second of voice is no message", opts: RecordOptions{},
			payload: append(slices.Clone(voice[:4000]), quiet[:8000]...), reason: StopHangup,
			length: 1500 * time.Millisecond, voiced: 500 * time.Millisecond, stopNear: -1,
		},
		{
			name: "only quiet: no message", opts: RecordOptions{SilenceTimeout: 3 * time.Second},
			payload: quiet, reason: StopSilence, length: 500 * time.Millisecond, stopNear: 150 + 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecorder(pcmu, tc.opts)
			stoppedAt := -1
			ts := uint32(0)
			for k, p := range packetize(tc.payload, []int{160}, 1, 0) {
				if k == tc.jumpAt && tc.jump != 0 {
					ts += tc.jump
				}
				if got := r.Write(rtpPacket(t, 0, p.seq, p.ts+ts, ssrcA, false, p.payload)); got != 0 && stoppedAt < 0 {
					stoppedAt = k
				}
			}
			rec := r.Stop(StopHangup)
			if rec.Reason != tc.reason || rec.Duration() != tc.length || rec.Voiced != tc.voiced || rec.IsMessage() != tc.message {
				t.Fatalf("got %v %v voiced %v message %v; want %v %v voiced %v message %v",
					rec.Reason, rec.Duration(), rec.Voiced, rec.IsMessage(), tc.reason, tc.length, tc.voiced, tc.message)
			}
			if stoppedAt != tc.stopNear {
				t.Errorf("stopped at packet %d, want %d", stoppedAt, tc.stopNear)
			}
		})
	}
}

func TestRecorderBounds(t *testing.T) {
	// Far-future timestamps cannot make the recording longer than its
	// maximum, nor allocate beyond it.
	r := NewRecorder(pcmu, RecordOptions{MaxLength: 2 * time.Second, SilenceTimeout: -1})
	payload := PCMU.Encode(nil, speech(160, 0))
	for i := range 1000 {
		r.Write(rtpPacket(t, 0, uint16(i), uint32(i)*8000*11, ssrcA, false, payload))
	}
	rec := r.Stop(StopHangup)
	if rec.Duration() > 2*time.Second || cap(rec.Samples) > 3*8000*2 {
		t.Fatalf("duration %v cap %d", rec.Duration(), cap(rec.Samples))
	}
}

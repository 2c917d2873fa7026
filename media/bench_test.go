package media

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRecorder measures the recorder's CPU per 20 ms packet: parse,
// sequence checks, G.711 decode, placement and silence detection. One op is
// one packet; a stream's worth of packets is 50 ops a second.
func BenchmarkRecorder(b *testing.B) {
	const n = 9000 // 180 s of 20 ms packets: one maximum-length recording
	encoded := PCMU.Encode(nil, speech(n*160, 0))
	build := func(reorder bool) [][]byte {
		var out [][]byte
		for _, p := range packetize(encoded, []int{160}, 1, 0) {
			out = append(out, rtpPacket(b, 0, p.seq, p.ts, ssrcA, false, p.payload))
		}
		if reorder { // swap every 7th pair, drop every 50th packet
			for i := 0; i+1 < len(out); i += 7 {
				out[i], out[i+1] = out[i+1], out[i]
			}
			kept := out[:0]
			for i, p := range out {
				if i%50 != 49 {
					kept = append(kept, p)
				}
			}
			out = kept
		}
		return out
	}
	for _, bc := range []struct {
		name    string
		reorder bool
	}{{"in-order", false}, {"reordered-2pct-loss", true}} {
		b.Run(bc.name, func(b *testing.B) {
			packets := build(bc.reorder)
			opts := RecordOptions{SilenceTimeout: -1}
			r := NewRecorder(pcmu, opts)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % len(packets)
				if k == 0 && i > 0 {
					r.Stop(StopHangup)
					r = NewRecorder(pcmu, opts)
				}
				r.Write(packets[k])
			}
		})
	}
}

// BenchmarkLoopback500 runs MEDIA_BENCH_STREAMS (default 500) voicemail
// recordings at once over loopback for MEDIA_BENCH_SECONDS (default 5):
// each caller is a Session playing speech at 20 ms, each recorder a Session
// on a port from a Ports range that records it and sends silence back.
// It reports the packet loss at the recorders (packets the callers sent that
// no recording holds, late ones included) and the process CPU (callers and
// recorders together) per stream. One op is the whole run.
//
//	go test -run '^$' -bench Loopback500 -benchtime 1x ./media/
func BenchmarkLoopback500(b *testing.B) {
	streams := envInt("MEDIA_BENCH_STREAMS", 500)
	seconds := envInt("MEDIA_BENCH_SECONDS", 5)
	for i := 0; i < b.N; i++ {
		loopbackRun(b, streams, time.Duration(seconds)*time.Second)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func loopbackRun(b *testing.B, streams int, length time.Duration) {
	b.StopTimer()
	lo := netip.MustParseAddr("127.0.0.1")
	ports, err := NewPorts(30000, 30000+2*streams+200)
	if err != nil {
		b.Fatal(err)
	}
	audio := speech(durationSamples(length), 0)
	frames := (len(audio) + 159) / 160
	callers := make([]*Session, streams)
	recorders := make([]*Session, streams)
	for i := range streams {
		rc, err := ports.Listen(lo)
		if err != nil {
			b.Fatal(err)
		}
		cc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		negR, negC := pcmu, pcmu
		negR.Remote = cc.LocalAddr().(*net.UDPAddr).AddrPort()
		negC.Remote = rc.LocalAddr().(*net.UDPAddr).AddrPort()
		recorders[i] = NewSession(rc, negR)
		callers[i] = NewSession(cc, negC)
		prime(b, rc.UDPConn, callers[i]) // a caller sends once it heard from its recorder
	}
	defer func() {
		for i := range streams {
			callers[i].Close()
			recorders[i].Close()
		}
	}()

	ctx := context.Background()
	results := make([]Recording, streams)
	var recWG, started sync.WaitGroup
	started.Add(streams)
	for i, s := range recorders {
		recWG.Add(1)
		s.recording = started.Done
		go func() {
			defer recWG.Done()
			results[i], _ = s.Record(ctx, RecordOptions{MaxLength: length + 10*time.Second, SilenceTimeout: -1, NoRTPTimeout: time.Second})
		}()
	}
	started.Wait()

	before := cpuTime()
	wall := time.Now()
	b.StartTimer()
	var playWG sync.WaitGroup
	for i, s := range callers {
		playWG.Add(1)
		go func() {
			defer playWG.Done()
			// Spread the streams over one packet time, as real calls are.
			t := time.NewTimer(time.Duration(i) * DefaultPtime / time.Duration(streams))
			<-t.C
			if err := s.Play(ctx, audio); err != nil {
				b.Error(err)
			}
		}()
	}
	playWG.Wait()
	playing := time.Since(wall)
	cpu := cpuTime() - before
	recWG.Wait() // each ends a second after its last packet
	b.StopTimer()

	expected := streams * frames
	got, late, lost := 0, 0, 0
	for _, r := range results {
		got += r.Stats.Packets
		late += r.Stats.Late
		lost += r.Stats.Lost
	}
	missing := expected - got + late
	b.ReportMetric(100*float64(missing)/float64(expected), "loss_%")
	b.ReportMetric(float64(late), "late_pkts")
	b.ReportMetric(100*cpu.Seconds()/playing.Seconds()/float64(streams), "cpu_%/stream")
	b.ReportMetric(float64(cpu.Microseconds())/float64(expected), "cpu_µs/pkt")
	b.ReportMetric(playing.Seconds(), "play_s")
	b.Logf("%d streams × %v: %d packets sent, %d recorded (%d late, %d lost by sequence); CPU %v over %v of play (%.0f%% of one core)",
		streams, length, expected, got, late, lost, cpu.Round(time.Millisecond), playing.Round(time.Millisecond), 100*cpu.Seconds()/playing.Seconds())
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

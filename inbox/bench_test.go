package inbox

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The figures: the newest 50 items of a number with 1M stored
// events under 2 ms p99, and at least 5,000 appended events/s.
//
//	go test -run '^$' -bench 'Items|Append' -benchtime 2000x ./inbox/

var big struct {
	once sync.Once
	s    *Store
	dir  string
	err  error
}

// bigStore is a number with 1,000,000 events over 5,000 conversations
// (texts, with calls and comments mixed in), loaded once per process.
func bigStore(b *testing.B) *Store {
	big.once.Do(func() {
		dir, err := os.MkdirTemp("", "inbox-bench")
		big.dir = dir
		if err != nil {
			big.err = err
			return
		}
		db, err := bolt.Open(filepath.Join(dir, "big.db"), 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true})
		if err != nil {
			big.err = err
			return
		}
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		clock := start
		s, err := Open(db, func() time.Time { return clock })
		if err != nil {
			big.err = err
			return
		}
		const total, perTx, parties = 1_000_000, 20_000, 5_000
		for done := 0; done < total && big.err == nil; done += perTx {
			big.err = db.Update(func(tx *bolt.Tx) error {
				for i := done; i < done+perTx; i++ {
					clock = start.Add(time.Duration(i) * time.Second)
					party := fmt.Sprintf("+1555%07d", i%parties)
					ev := Event{ID: s.NewID(), At: clock, Kind: KindMessage, Inbound: i%2 == 0, Text: "see you at three"}
					switch i % 10 {
					case 3:
						ev.Kind, ev.Text = KindCall, "inbound call"
					case 7:
						ev.Kind, ev.Text, ev.User = KindComment, "called back", "ann"
					}
					if ev.Kind != KindComment {
						ev.Ref = s.NewID()
					}
					if _, err := s.appendItem(tx, "+15551230001", party, s.NewID(), &ev, nil); err != nil {
						return err
					}
				}
				return nil
			})
		}
		big.s = s
	})
	if big.err != nil {
		b.Fatal(big.err)
	}
	return big.s
}

// TestMain removes the shared benchmark store after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if big.s != nil {
		big.s.db.Close()
		os.RemoveAll(big.dir)
	}
	os.Exit(code)
}

// BenchmarkItemsNewest50Of1M reads the newest 50 items of the number with
// 1M events (p99 reported beside the mean).
func BenchmarkItemsNewest50Of1M(b *testing.B) {
	s := bigStore(b)
	timeEach(b, 50, func() (int, error) {
		items, err := s.Items("+15551230001", 50)
		return len(items), err
	})
}

// BenchmarkConversations50Of5000 lists the newest 50 of the number's 5,000
// conversations (the inbox listing).
func BenchmarkConversations50Of5000(b *testing.B) {
	s := bigStore(b)
	timeEach(b, 50, func() (int, error) {
		convs, err := s.Conversations([]string{"+15551230001"}, "", 50)
		return len(convs), err
	})
}

// timeEach runs read b.N times, each of which must return want results,
// and reports the p50 and p99 of their times.
func timeEach(b *testing.B, want int, read func() (int, error)) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		n, err := read()
		lat = append(lat, time.Since(t0))
		if err != nil || n != want {
			b.Fatalf("read %d, want %d: %v", n, want, err)
		}
	}
	b.StopTimer()
	report(b, lat)
}

// BenchmarkAppendText stores inbound texts from 64 writers at once, each
// committed to disk (fsync) before SaveMessage returns, as the SIP side
// does before answering 200: events/s is the figure.
func BenchmarkAppendText(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "a.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.MaxBatchDelay = 2 * time.Millisecond
	s, err := Open(db, nil)
	if err != nil {
		b.Fatal(err)
	}
	checkAfter(b, s)
	var mu sync.Mutex
	n := 0
	b.SetParallelism(32) // 64 writers on 2 cores
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i := n
			n++
			mu.Unlock()
			m := &Message{ID: s.NewID(), Number: "+15551230001", Party: fmt.Sprintf("+1555%07d", i%500),
				Direction: "inbound", Text: "are you open today?", ContentType: "text/plain", At: time.Now(), Status: MsgReceived}
			if err := s.SaveMessage(m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func report(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

package location

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t testing.TB, path string, c *clock) (*Store, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(db, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func reg(callID string, cseq uint32, contacts ...Contact) Update {
	return Update{CallID: callID, CSeq: cseq, Source: "127.0.0.1:5060", Transport: "udp", Contacts: contacts}
}

func TestApplyRules(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	s, _ := open(t, filepath.Join(t.TempDir(), "l.db"), c)
	a := Contact{URI: "sip:a@1", Expires: time.Hour}
	b := Contact{URI: "sip:b@1", Expires: time.Minute}
	if bs, err := s.Apply("u", reg("c1", 1, a, b)); err != nil || len(bs) != 2 {
		t.Fatalf("%v %v", bs, err)
	}
	// Same Call-ID and CSeq: a retransmission, answered with what is there.
	if bs, err := s.Apply("u", reg("c1", 1, Contact{URI: "sip:a@1"})); err != nil || len(bs) != 2 {
		t.Fatalf("retransmission: %v %v", bs, err)
	}
	// Same Call-ID, older CSeq: refused, nothing changes.
	if _, err := s.Apply("u", reg("c1", 0, Contact{URI: "sip:a@1"})); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("older cseq: %v", err)
	}
	if _, err := s.Apply("u", Update{CallID: "c1", CSeq: 0, RemoveAll: true}); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("remove-all with old cseq: %v", err)
	}
	// Another Call-ID may change it at any CSeq (another device).
	if bs, _ := s.Apply("u", reg("c2", 1, Contact{URI: "sip:b@1"})); len(bs) != 1 {
		t.Fatalf("remove via other call-id: %v", bs)
	}
	c.Advance(2 * time.Hour)
	if got := s.Lookup("u"); len(got) != 0 {
		t.Fatalf("expired bindings returned: %v", got)
	}
	if n, err := s.Sweep(); n != 1 || err != nil || s.Count() != 0 {
		t.Fatalf("sweep: %d %v (held %d)", n, err, s.Count())
	}
}

// TestConcurrentApplyPersists: concurrent REGISTERs for one user and for
// many users share commits and the file ends equal to memory.
func TestConcurrentApplyPersists(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	path := filepath.Join(t.TempDir(), "l.db")
	s, db := open(t, path, c)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			user := fmt.Sprintf("u%d", i%10)
			if _, err := s.Apply(user, reg(fmt.Sprintf("c%d", i), 1, Contact{URI: fmt.Sprintf("sip:%d@h", i), Expires: time.Hour})); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	want := map[string]int{}
	for _, b := range s.All() {
		want[b.User]++
	}
	db.Close()
	s2, _ := open(t, path, c)
	for u, n := range want {
		if got := len(s2.Lookup(u)); got != n || n != 5 {
			t.Errorf("%s: memory %d, file %d (want 5: the per-user cap)", u, n, got)
		}
	}
}

// BenchmarkMemoryPerBinding holds 100,000 bindings (20,000 users × 5,
// realistic contact, Call-ID and User-Agent sizes) and reports the heap they
// take, loaded the way a restart loads them (Open from the file).
func BenchmarkMemoryPerBinding(b *testing.B) {
	const users, per = 20000, 5
	c := &clock{t: time.Unix(1e9, 0)}
	path := filepath.Join(b.TempDir(), "l.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		for u := 0; u < users; u++ {
			name := fmt.Sprintf("user%05d", u)
			bs := make([]Binding, 0, per)
			for d := 0; d < per; d++ {
				bs = append(bs, Binding{
					User: name, Contact: fmt.Sprintf("sip:%s-0x%08x@192.0.2.%d:%d;transport=udp", name, u*per+d, d, 5060+d),
					Source: fmt.Sprintf("192.0.2.%d:%d", d, 40000+u%20000), Transport: "udp",
					UserAgent: "Yealink SIP-T46S 66.86.0.15", CallID: fmt.Sprintf("%08x-%04x@192.0.2.%d", u, d, d), CSeq: 42,
					Expires: c.Now().Add(time.Hour), Updated: c.Now(),
				})
			}
			v, _ := json.Marshal(bs)
			if err := bk.Put([]byte(name), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		s, err := Open(db, Options{Now: c.Now})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if s.Count() != users*per {
			b.Fatalf("loaded %d", s.Count())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(users*per), "B/binding")
		runtime.KeepAlive(s)
	}
	db.Close()
}

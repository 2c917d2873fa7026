package inbox

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestCallsNewestFirstPerNumber(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "i.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Unix(1e9, 0)
	s, err := Open(db, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 9; i++ {
		number := []string{"+15551230001", "+15551230002", "+15551230010"}[i%3]
		c := &Call{ID: s.NewID(), Number: number, Disposition: Missed, Branches: []Branch{}}
		ids = append(ids, c.ID)
		if err := s.PutCall(c); err != nil {
			t.Fatal(err)
		}
	}
	// Updating a record keeps one record and one index entry.
	c, err := s.Call(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	c.Disposition = Answered
	if err := s.PutCall(&c); err != nil {
		t.Fatal(err)
	}
	got, err := s.Calls([]string{"+15551230001"}, 10)
	if err != nil || len(got) != 3 || got[0].ID != ids[6] || got[2].ID != ids[0] || got[2].Disposition != Answered {
		t.Fatalf("one number: %v %v", got, err)
	}
	got, _ = s.Calls([]string{"+15551230001", "+15551230002"}, 4)
	if len(got) != 4 || got[0].ID != ids[7] || got[1].ID != ids[6] || got[3].ID != ids[3] {
		t.Fatalf("two numbers, limit 4: %v", got)
	}
	if got, _ = s.Calls(nil, 10); len(got) != 0 {
		t.Fatalf("no numbers: %v", got)
	}
	if _, err := s.Call("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

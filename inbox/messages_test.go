package inbox

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestSaveInboundOncePerKey: a carrier's resend of one MESSAGE (same
// Call-ID, CSeq and From tag) is one text; another CSeq is another text.
func TestSaveInboundOncePerKey(t *testing.T) {
	s, now := clockStore(t)
	const num, party = "+15551230001", "+15557654321"
	first := inboundText(s, num, party, "are you open?")
	first.Key = InboundKey("a84b4c76e66710@carrier", 314159, "1928301774")
	got, dup, err := s.SaveInbound(first)
	if err != nil || dup || got.ID != first.ID {
		t.Fatalf("first copy: %+v, dup %v, %v", got, dup, err)
	}
	*now = now.Add(20 * time.Second)
	again := inboundText(s, num, party, "are you open?")
	again.Key = first.Key
	got, dup, err = s.SaveInbound(again)
	if err != nil || !dup || got.ID != first.ID || got.Text != first.Text || got.Key != first.Key {
		t.Fatalf("resend: %+v, dup %v, %v; want the first text back", got, dup, err)
	}
	if _, err := s.Message(again.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the resend was stored as %s: %v", again.ID, err)
	}
	if err := s.SaveMessage(again); !errors.Is(err, ErrExists) {
		t.Fatalf("SaveMessage of a stored key = %v, want ErrExists", err)
	}
	c, _ := s.ItemConversation(first.ID)
	if c.Items != 1 {
		t.Fatalf("%d items after a resend, want 1", c.Items)
	}

	next := inboundText(s, num, party, "hello?")
	next.Key = InboundKey("a84b4c76e66710@carrier", 314160, "1928301774")
	if got, dup, err = s.SaveInbound(next); err != nil || dup || got.ID != next.ID {
		t.Fatalf("next CSeq: %+v, dup %v, %v", got, dup, err)
	}
	if c, _ = s.ItemConversation(first.ID); c.Items != 2 {
		t.Fatalf("%d items after a second text, want 2", c.Items)
	}

	// Recording the deliveries keeps the key, even from a copy without it.
	upd := *first
	upd.Key = ""
	upd.Deliveries = []Delivery{{User: "ann", Contact: "sip:ann@192.0.2.1", Outcome: DeliveryDelivered, At: *now}}
	if err := s.UpdateMessage(&upd); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Message(first.ID); m.Key != first.Key || len(m.Deliveries) != 1 {
		t.Fatalf("after UpdateMessage: %+v", m)
	}
	if _, dup, _ := s.SaveInbound(again); !dup {
		t.Fatal("after UpdateMessage the key no longer holds")
	}

	if _, _, err := s.SaveInbound(inboundText(s, num, party, "no key")); err == nil {
		t.Fatal("SaveInbound without a key stored it")
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestSaveInboundAcrossRestart: the key is on disk with the text, so a
// copy after the file is closed and opened again is still the same text.
func TestSaveInboundAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "i.db")
	open := func() (*bolt.DB, *Store) {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		return db, s
	}
	key := InboundKey("xyz@carrier", 1, "tag")
	db, s := open()
	first := inboundText(s, "+15551230001", "+15557654321", "one")
	first.Key = key
	if _, dup, err := s.SaveInbound(first); err != nil || dup {
		t.Fatalf("first copy: dup %v, %v", dup, err)
	}
	db.Close()

	db, s = open()
	t.Cleanup(func() { db.Close() })
	checkAfter(t, s)
	again := inboundText(s, "+15551230001", "+15557654321", "one")
	again.Key = key
	got, dup, err := s.SaveInbound(again)
	if err != nil || !dup || got.ID != first.ID {
		t.Fatalf("after the restart: %+v, dup %v, %v; want %s back", got, dup, err, first.ID)
	}
	other := inboundText(s, "+15551230001", "+15557654321", "two")
	other.Key = InboundKey("xyz@carrier", 2, "tag")
	if _, dup, err := s.SaveInbound(other); err != nil || dup {
		t.Fatalf("next CSeq after the restart: dup %v, %v", dup, err)
	}
	if c, _ := s.ItemConversation(first.ID); c.Items != 2 {
		t.Fatalf("%d items, want 2", c.Items)
	}
}

// TestInboundKeyParts: each part changes the key, and no part can pass
// for another.
func TestInboundKeyParts(t *testing.T) {
	base := InboundKey("c@h", 1, "t")
	for _, k := range []string{
		InboundKey("c@h2", 1, "t"), InboundKey("c@h", 2, "t"), InboundKey("c@h", 1, "u"), InboundKey("c@h", 1, ""),
		InboundKey("t c@h", 1, ""), // a tag cannot move into the Call-ID
	} {
		if k == base {
			t.Errorf("%q collides with %q", k, base)
		}
	}
	if InboundKey("1 t c@h", 1, "") == InboundKey("c@h", 1, "1 t") {
		t.Error("tag and Call-ID are ambiguous")
	}
}

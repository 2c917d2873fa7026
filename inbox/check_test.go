package inbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// checkAfter fails the test at its end when the store is inconsistent, as
// bbolt's own tests check the file after each test. Register it after the
// file's Close, so it runs first.
func checkAfter(t testing.TB, s *Store) {
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Error(err)
		}
	})
}

// sample is one of every kind of record, with the ids a test needs.
type sample struct {
	num, party               string
	conv, call, vm, msg, key string
	comment, opening         string
	contact, phone           string
}

// fill stores a call that ended in voicemail, an outbound call, texts in
// (with a key) and out, a comment and its reply, an opening, a state
// change and a contact.
func fill(t *testing.T, s *Store, now *time.Time) sample {
	t.Helper()
	x := sample{num: "+15551230001", party: "+15557654321", phone: "+15550001111"}
	call := &Call{ID: s.NewID(), Number: x.num, Direction: "inbound", Remote: "15557654321", StartedAt: *now, Disposition: Ringing}
	if err := s.PutCall(call); err != nil {
		t.Fatal(err)
	}
	call.Disposition = WentToVoicemail
	vm := &Voicemail{ID: s.NewID(), Number: x.num, From: call.Remote, ReceivedAt: *now, DurationS: 3, CallID: call.ID}
	call.VoicemailID = vm.ID
	if err := s.SaveVoicemail(vm, []byte{1, 2}, call); err != nil {
		t.Fatal(err)
	}
	out := &Call{ID: s.NewID(), Number: x.num, Direction: "outbound", Remote: x.party, Member: "ann", StartedAt: *now, Disposition: Answered}
	if err := s.PutCall(out); err != nil {
		t.Fatal(err)
	}
	in := inboundText(s, x.num, x.party, "are you open?")
	in.Key = InboundKey("abc@carrier", 1, "t1")
	if _, _, err := s.SaveInbound(in); err != nil {
		t.Fatal(err)
	}
	reply := &Message{ID: s.NewID(), Number: x.num, Party: x.party, Direction: "outbound", Member: "ann", Text: "yes", At: *now, Status: MsgSending}
	if err := s.SaveMessage(reply); err != nil {
		t.Fatal(err)
	}
	c, err := s.ItemConversation(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := s.Comment(in.ID, "ann", "I'll answer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Comment(cm.ID, "ben", "thanks"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(c.ID, "ben"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(c.ID, "ben", StateDone); err != nil {
		t.Fatal(err)
	}
	cs, err := s.AddContacts([]Contact{{Name: "Grace", Phones: []string{x.phone}}})
	if err != nil {
		t.Fatal(err)
	}
	x.conv, x.call, x.vm, x.msg, x.key, x.comment, x.contact = c.ID, call.ID, vm.ID, in.ID, in.Key, cm.ID, cs[0].ID
	x.opening = s.ReadMarker(c.ID, "ben")
	return x
}

func TestCheckPassesOnEveryKindOfRecord(t *testing.T) {
	s, now := clockStore(t)
	fill(t, s, now)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckFindsCorruption breaks one index or record at a time behind the
// store's back, with a raw bbolt update, and expects Check to name it.
func TestCheckFindsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(tx *bolt.Tx, x sample) error
		want   func(x sample) []string // in Check's error
	}{
		{"a text deleted, its index entries left", func(tx *bolt.Tx, x sample) error {
			return tx.Bucket(bucketMessages).Delete([]byte(x.msg))
		}, func(x sample) []string {
			return []string{fmt.Sprintf("names message %q, which does not exist", x.msg), fmt.Sprintf("message key %q names message", x.key)}
		}},
		{"a call missing from its number index", func(tx *bolt.Tx, x sample) error {
			return tx.Bucket(bucketCallsNumber).Delete([]byte(x.num + "\x00" + x.call))
		}, func(x sample) []string {
			return []string{"call " + x.call + " of +15551230001 is missing from the number index"}
		}},
		{"a stale state index entry", func(tx *bolt.Tx, x sample) error {
			c, err := getConv(tx, x.conv)
			if err != nil {
				return err
			}
			c.State = StateUnread
			return tx.Bucket(bucketConvState).Put(stateKey(&c), nil)
		}, func(x sample) []string { return []string{"is stale: conversation " + x.conv} }},
		{"an item counter off by one", func(tx *bolt.Tx, x sample) error {
			c, err := getConv(tx, x.conv)
			if err != nil {
				return err
			}
			c.Items++
			v, _ := json.Marshal(c)
			return tx.Bucket(bucketConv).Put([]byte(c.ID), v)
		}, func(x sample) []string { return []string{x.conv + " counts 8 items, its timeline has 7"} }},
		{"an item indexed to a conversation that does not exist", func(tx *bolt.Tx, x sample) error {
			return tx.Bucket(bucketItems).Put([]byte(x.call), []byte(strings.Repeat("0", 32)))
		}, func(x sample) []string {
			return []string{"item " + x.call + " of conversation " + x.conv + " is indexed to conversation", "which does not exist"}
		}},
		{"a voicemail without audio", func(tx *bolt.Tx, x sample) error {
			return tx.Bucket(bucketVoicemailAudio).Delete([]byte(x.vm))
		}, func(x sample) []string { return []string{"voicemail " + x.vm + " has no audio"} }},
		{"a contact deleted, its phone left", func(tx *bolt.Tx, x sample) error {
			return tx.Bucket(bucketContacts).Delete([]byte(x.contact))
		}, func(x sample) []string {
			return []string{fmt.Sprintf("phone %s names contact %q, which does not exist", x.phone, x.contact)}
		}},
		{"a read marker on a comment", func(tx *bolt.Tx, x sample) error {
			return tx.Bucket(bucketConvRead).Put([]byte(x.conv+"\x00ben"), []byte(x.comment))
		}, func(x sample) []string { return []string{"names event " + x.comment + ", which is not ben's opening"} }},
		{"an event missing from the number index", func(tx *bolt.Tx, x sample) error {
			return tx.Bucket(bucketEventNumber).Delete([]byte(x.num + "\x00" + x.opening))
		}, func(x sample) []string {
			return []string{"event " + x.opening + " of conversation " + x.conv + " is indexed by number to \"\""}
		}},
		{"a feed event past the feed's sequence, its item in another conversation", func(tx *bolt.Tx, x sample) error {
			v, _ := json.Marshal(FeedEvent{Seq: 999, Type: EventCommentCreated, Number: x.num, Conv: strings.Repeat("0", 32),
				Item: x.comment, Data: json.RawMessage(`{}`)})
			return tx.Bucket(bucketFeed).Put(feedKey(999), v)
		}, func(x sample) []string {
			return []string{"feed event 999 is past the feed's sequence", "feed event 999 names conversation " + strings.Repeat("0", 32) + ", which does not exist"}
		}},
		{"a key naming another text", func(tx *bolt.Tx, x sample) error {
			return tx.Bucket(bucketMessageKeys).Put([]byte(InboundKey("other", 1, "t")), []byte(x.msg))
		}, func(x sample) []string { return []string{"names message " + x.msg + ", whose key is"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, now := uncheckedStore(t)
			x := fill(t, s, now)
			if err := s.Check(); err != nil {
				t.Fatalf("before: %v", err)
			}
			if err := s.db.Update(func(tx *bolt.Tx) error { return tc.break_(tx, x) }); err != nil {
				t.Fatal(err)
			}
			err := s.Check()
			if !errors.Is(err, ErrInconsistent) {
				t.Fatalf("Check = %v, want ErrInconsistent", err)
			}
			for _, w := range tc.want(x) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check = %v\nwant it to say %q", err, w)
				}
			}
		})
	}
}

// TestCheckBounded: many problems, 20 named and the rest counted.
func TestCheckBounded(t *testing.T) {
	s, now := uncheckedStore(t)
	for i := range 30 {
		if err := s.SaveMessage(inboundText(s, "+15551230001", fmt.Sprintf("+1555000%04d", i), "hi")); err != nil {
			t.Fatal(err)
		}
		*now = now.Add(time.Second)
	}
	s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEventNumber)
		var keys [][]byte
		b.ForEach(func(k, _ []byte) error { keys = append(keys, k); return nil })
		for _, k := range keys {
			b.Delete(k)
		}
		return nil
	})
	err := s.Check()
	if err == nil || strings.Count(err.Error(), "indexed by number") != maxProblems || !strings.HasSuffix(err.Error(), "; and 10 more") {
		t.Fatalf("Check = %v", err)
	}
}

// TestNewestItemWhateverTheWriteOrder: two writers' items may commit in the
// other order than their ids were made (bbolt's Batch runs them as they
// arrive); the conversation still names the newer as its last item.
func TestNewestItemWhateverTheWriteOrder(t *testing.T) {
	s, now := clockStore(t)
	const num, party = "+15551230001", "+15557654321"
	older := Event{ID: s.NewID(), Kind: KindMessage, At: *now, Inbound: true, Ref: "m1", Text: "first"}
	newer := Event{ID: s.NewID(), Kind: KindMessage, At: *now, Inbound: true, Ref: "m2", Text: "second"}
	conv := s.NewID()
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, m := range []*Message{{ID: "m2", Number: num, Party: party, Direction: "inbound", Text: "second"},
			{ID: "m1", Number: num, Party: party, Direction: "inbound", Text: "first"}} {
			v, _ := json.Marshal(m)
			if err := tx.Bucket(bucketMessages).Put([]byte(m.ID), v); err != nil {
				return err
			}
		}
		if _, err := s.appendItem(tx, num, party, conv, &newer, nil); err != nil {
			return err
		}
		_, err := s.appendItem(tx, num, party, conv, &older, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Conversation(conv)
	if c.LastItem != newer.ID || c.LastSummary != "second" || c.LastInbound != newer.ID || c.LastEvent != newer.ID || c.Items != 2 {
		t.Fatalf("conversation %+v, want the newer item %s last", c, newer.ID)
	}
	// And for real: many writers on one conversation at once.
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 10 {
				m := &Message{ID: s.NewID(), Number: num, Party: party, Direction: "inbound", Text: fmt.Sprint(w, i), At: *now, Status: MsgReceived}
				if err := s.SaveMessage(m); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

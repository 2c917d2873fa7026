package inbox

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketCalls       = []byte("inbox.calls")
	bucketCallsNumber = []byte("inbox.calls.by_number")
)

// ErrNotFound: no such record.
var ErrNotFound = errors.New("not found")

// Dispositions of a call.
const (
	Ringing         = "ringing" // not yet settled
	Answered        = "answered"
	Missed          = "missed"
	WentToVoicemail = "voicemail"
	Failed          = "failed"
)

// Branch outcomes.
const (
	BranchRinging            = "ringing"
	BranchAnswered           = "answered"
	BranchCancelledElsewhere = "cancelled_elsewhere"
	BranchDeclined           = "declined"
	BranchBusy               = "busy"
	BranchNoAnswer           = "no_answer"
	BranchCallerCancelled    = "caller_cancelled"
	BranchUnreachable        = "unreachable"
	BranchRedirected         = "redirected"         // the phone sent the call elsewhere (3xx)
	BranchDeclinedElsewhere  = "declined_elsewhere" // another phone declined for everyone (6xx)
)

// Call is the history record of one call on a shared number.
type Call struct {
	ID          string     `json:"id"`
	Number      string     `json:"number"`
	Direction   string     `json:"direction"` // inbound | outbound
	Remote      string     `json:"remote"`    // the outside party
	Member      string     `json:"member,omitempty"`
	CallID      string     `json:"call_id"`
	StartedAt   time.Time  `json:"started_at"`
	AnsweredAt  *time.Time `json:"answered_at,omitempty"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	DurationS   int        `json:"duration_s"`
	Disposition string     `json:"disposition"`
	AnsweredBy  *Answerer  `json:"answered_by,omitempty"`
	Skipped     []string   `json:"skipped,omitempty"` // members with no registered device
	VoicemailID string     `json:"voicemail_id,omitempty"`
	Branches    []Branch   `json:"branches"`
}

// Answerer is who took the call, on which device.
type Answerer struct {
	User      string `json:"user"`
	Contact   string `json:"contact"`
	UserAgent string `json:"user_agent,omitempty"`
}

// Branch is one device that was rung.
type Branch struct {
	Step      int        `json:"step"`
	User      string     `json:"user"`
	Contact   string     `json:"contact"`
	Source    string     `json:"source"`
	Transport string     `json:"transport"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	Outcome   string     `json:"outcome"`
	Status    int        `json:"status,omitempty"` // final SIP status from the device
}

// Store is the inbox in the workspace's bbolt file.
type Store struct {
	// FeedRetention is how long the feed keeps an event (0:
	// DefaultFeedRetention, 7 days); set it before the first write.
	FeedRetention time.Duration

	db   *bolt.DB
	now  func() time.Time
	subs subscribers // told of commits that added feed events

	mu   sync.Mutex
	last uint64 // last id's nanoseconds
	seq  uint64
}

// Open prepares the inbox buckets.
func Open(db *bolt.DB, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{db: db, now: now}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketCalls, bucketCallsNumber, bucketFeed} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// A workspace from before conversations existed: its calls and
		// voicemail join their conversations once, in the same transaction.
		backfill := tx.Bucket(bucketConv) == nil
		if err := s.convBuckets(tx); err != nil {
			return err
		}
		if err := s.vmBuckets(tx); err != nil {
			return err
		}
		if backfill {
			return s.backfill(tx)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// backfill adds every stored call and voicemail to its conversation, in
// the order they happened, with event ids made from their own times (so
// they sort before anything that comes later).
func (s *Store) backfill(tx *bolt.Tx) error {
	type item struct {
		at     time.Time
		number string
		party  string
		ev     Event
	}
	var items []item
	err := tx.Bucket(bucketCalls).ForEach(func(k, v []byte) error {
		var c Call
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("call %s: %w", k, err)
		}
		if c.Number != "" {
			items = append(items, item{c.StartedAt, c.Number, Party(c.Remote), callEvent("", &c)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketVoicemail).ForEach(func(k, v []byte) error {
		var m Voicemail
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("voicemail %s: %w", k, err)
		}
		items = append(items, item{m.ReceivedAt, m.Number, Party(m.From), voicemailEvent("", &m)})
		return nil
	})
	if err != nil {
		return err
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].at.Before(items[j].at) })
	for i, it := range items {
		it.ev.ID = idAt(it.at, uint64(i))
		if _, err := s.appendItem(tx, it.number, it.party, idAt(it.at, uint64(i)+1<<32), &it.ev, nil); err != nil {
			return err
		}
	}
	return nil
}

// idAt is a time-ordered id for an item of time t (seq keeps ids of the
// same instant apart).
func idAt(t time.Time, seq uint64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], seq)
	return hex.EncodeToString(b[:])
}

// NewID returns a time-ordered id: hex of 8 bytes nanoseconds + 8 bytes
// sequence, unique within this process.
func (s *Store) NewID() string {
	s.mu.Lock()
	ns := uint64(s.now().UnixNano())
	if ns <= s.last {
		s.seq++
	} else {
		s.last, s.seq = ns, 0
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.last)
	binary.BigEndian.PutUint64(b[8:], s.seq)
	s.mu.Unlock()
	return hex.EncodeToString(b[:])
}

// PutCall writes the whole record (and its index entry) in one transaction.
func (s *Store) PutCall(c *Call) error {
	if c.ID == "" {
		return fmt.Errorf("call without id")
	}
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	ev, conv := callEvent(s.NewID(), c), s.NewID()
	return s.db.Batch(func(tx *bolt.Tx) error {
		return s.putCall(tx, c, v, &ev, conv)
	})
}

// callEvent is a call's entry in its conversation's timeline.
func callEvent(id string, c *Call) Event {
	ev := Event{ID: id, Kind: KindCall, At: c.StartedAt.UTC(), Inbound: c.Direction == "inbound", Ref: c.ID, User: c.Member}
	ev.Text = c.Direction + " call"
	if c.Member != "" {
		ev.Text += " by " + c.Member
	}
	return ev
}

// putCall writes a call record (v, c marshalled); the first write of a
// call also adds it to its conversation. The feed gets the steps the call
// passed since its stored record (callFeed).
func (s *Store) putCall(tx *bolt.Tx, c *Call, v []byte, ev *Event, conv string) error {
	calls := tx.Bucket(bucketCalls)
	var was *Call
	if raw := calls.Get([]byte(c.ID)); raw != nil {
		was = &Call{}
		if err := json.Unmarshal(raw, was); err != nil {
			return fmt.Errorf("call %s: %w", c.ID, err)
		}
	}
	if err := calls.Put([]byte(c.ID), v); err != nil {
		return err
	}
	if err := tx.Bucket(bucketCallsNumber).Put([]byte(c.Number+"\x00"+c.ID), nil); err != nil {
		return err
	}
	if was != nil {
		return s.callFeed(tx, was, c)
	}
	_, err := s.appendItem(tx, c.Number, Party(c.Remote), conv, ev, func(*Conversation) error {
		return s.callFeed(tx, nil, c)
	})
	return err
}

// Call returns one record.
func (s *Store) Call(id string) (Call, error) {
	var c Call
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCalls).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: no call %q", ErrNotFound, id)
		}
		return json.Unmarshal(v, &c)
	})
	return c, err
}

// Calls returns the newest calls first, of the given numbers only, at most
// limit (0: 50). It walks each number's index backwards, so its cost
// follows limit, not the size of the history.
func (s *Store) Calls(numbers []string, limit int) ([]Call, error) {
	if limit <= 0 {
		limit = 50
	}
	out := []Call{}
	err := s.db.View(func(tx *bolt.Tx) error {
		var ids []string
		idx := tx.Bucket(bucketCallsNumber).Cursor()
		for _, n := range numbers {
			prefix := []byte(n + "\x00")
			// Seek past the prefix, then step back into it.
			k, _ := idx.Seek(append(append([]byte{}, prefix[:len(prefix)-1]...), 0x01))
			if k == nil {
				k, _ = idx.Last()
			} else {
				k, _ = idx.Prev()
			}
			for got := 0; k != nil && bytes.HasPrefix(k, prefix) && got < limit; k, _ = idx.Prev() {
				ids = append(ids, string(k[len(prefix):]))
				got++
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(ids)))
		if len(ids) > limit {
			ids = ids[:limit]
		}
		calls := tx.Bucket(bucketCalls)
		for _, id := range ids {
			var c Call
			if err := json.Unmarshal(calls.Get([]byte(id)), &c); err != nil {
				return fmt.Errorf("call %s: %w", id, err)
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// CloseInterrupted ends the records a stopped server left open (a crash
// or kill while calls rang, were answered or were being recorded): each
// gets ended_at = now, and one still ringing becomes missed. It looks at
// the calls of the last maxAge only, newest first, and returns how many it
// closed.
func (s *Store) CloseInterrupted(now time.Time, maxAge time.Duration) (int, error) {
	closed := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCalls)
		c := b.Cursor()
		type fix struct {
			k    []byte
			v    []byte
			call Call
		}
		var fixes []fix
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var call Call
			if err := json.Unmarshal(v, &call); err != nil {
				return fmt.Errorf("call %s: %w", k, err)
			}
			if now.Sub(call.StartedAt) > maxAge {
				break
			}
			if call.EndedAt != nil {
				continue
			}
			t := now.UTC()
			call.EndedAt = &t
			if call.Disposition == Ringing || call.Disposition == WentToVoicemail && call.VoicemailID == "" {
				call.Disposition = Missed
			}
			if call.AnsweredAt != nil && call.Disposition == Answered {
				call.DurationS = int(t.Sub(*call.AnsweredAt).Round(time.Second) / time.Second)
			}
			out, err := json.Marshal(call)
			if err != nil {
				return err
			}
			fixes = append(fixes, fix{append([]byte(nil), k...), out, call})
		}
		for _, f := range fixes {
			if err := b.Put(f.k, f.v); err != nil {
				return err
			}
			was := f.call
			was.EndedAt = nil
			if err := s.callFeed(tx, &was, &f.call); err != nil {
				return err
			}
		}
		closed = len(fixes)
		return nil
	})
	return closed, err
}

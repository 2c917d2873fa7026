package webhook

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/inbox"
)

// The outbox's buckets, beside the inbox's in the workspace's file.
var (
	bucketHooks    = []byte("webhook.hooks")    // hook id → Hook; its sequence numbers the hooks
	bucketQueue    = []byte("webhook.queue")    // hook id → bucket: 8-byte feed seq → entry
	bucketPending  = []byte("webhook.pending")  // hook id → 8-byte count of its queue
	bucketAttempts = []byte("webhook.attempts") // hook id → bucket: 8-byte seq → Attempt
	bucketMeta     = []byte("webhook.meta")     // "cursor" → 8-byte feed seq enqueued up to
)

var keyCursor = []byte("cursor")

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid")
)

// Defaults of the Store's bounds.
const (
	DefaultQueueLimit   = 100000 // events waiting per webhook
	DefaultKeepAttempts = 100    // attempts remembered per webhook
)

// Hook is one webhook: where events go and which.
type Hook struct {
	ID      string    `json:"id"`
	URL     string    `json:"url"`
	Events  []string  `json:"events"`           // feed event types (inbox.FeedTypes)
	Number  string    `json:"number,omitempty"` // only this number's events; "": every number's
	Secret  string    `json:"secret"`           // hex of 32 random bytes: the HMAC key, as printed
	Created time.Time `json:"created"`
	After   uint64    `json:"after"` // the feed's number when it was added: it gets later events only
}

// Wants reports whether the hook takes the event.
func (h *Hook) Wants(e *inbox.FeedEvent) bool {
	return e.Seq > h.After && (h.Number == "" || h.Number == e.Number) && slices.Contains(h.Events, e.Type)
}

// Outcomes of an attempt.
const (
	Delivered = "delivered" // the receiver answered 2xx
	Retrying  = "retrying"  // failed; tried again at Next
	GivenUp   = "given_up"  // failed, and the event is older than the give-up time: dropped
	Dropped   = "dropped"   // never sent: the webhook's queue was full
)

// Attempt is one try to deliver an event to a webhook.
type Attempt struct {
	Event      string     `json:"event"` // the event's id (its feed number)
	Type       string     `json:"type"`
	At         time.Time  `json:"at"`
	Try        int        `json:"try"`              // 1 for the first attempt of this event
	Status     int        `json:"status,omitempty"` // the receiver's HTTP status; 0: none came
	Error      string     `json:"error,omitempty"`  // why no status came (timeout, refused)
	Outcome    string     `json:"outcome"`
	Next       *time.Time `json:"next,omitempty"` // Retrying: when
	DurationMS int64      `json:"duration_ms"`
}

// entry is one event waiting in a webhook's queue, with its body fixed
// when it was enqueued (so every try sends the same bytes).
type entry struct {
	Seq      uint64          `json:"seq"`
	Type     string          `json:"type"`
	Body     json.RawMessage `json:"body"`
	Enqueued time.Time       `json:"enqueued"`
	Tries    int             `json:"tries"`
	Next     time.Time       `json:"next"` // not before
}

// Body is what a webhook receives, as JSON.
type Body struct {
	ID        string          `json:"id"` // the event's feed number, also in Partyline-Event-Id
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Number    string          `json:"number"`
	Data      json.RawMessage `json:"data"`
}

// Store is the webhooks and their outbox in the workspace's bbolt file.
type Store struct {
	// QueueLimit bounds the events waiting per webhook (0:
	// DefaultQueueLimit); beyond it new events are dropped, and recorded.
	QueueLimit int
	// KeepAttempts is how many attempts each webhook remembers (0:
	// DefaultKeepAttempts).
	KeepAttempts int

	db      *bolt.DB
	now     func() time.Time
	changed chan struct{} // a hook was added or removed
}

// Open prepares the webhook buckets; now (nil: time.Now) dates new hooks.
func Open(db *bolt.DB, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketHooks, bucketQueue, bucketPending, bucketAttempts, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Store{db: db, now: now, changed: make(chan struct{}, 1)}, nil
}

func (s *Store) queueLimit() int {
	if s.QueueLimit > 0 {
		return s.QueueLimit
	}
	return DefaultQueueLimit
}

func (s *Store) keepAttempts() uint64 {
	if s.KeepAttempts > 0 {
		return uint64(s.KeepAttempts)
	}
	return DefaultKeepAttempts
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func readU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Changed is signalled after a hook is added or removed.
func (s *Store) Changed() <-chan struct{} { return s.changed }

func (s *Store) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Add stores a new webhook for events of types (inbox.FeedTypes) of number
// ("" for every number; the caller checks it exists) POSTed to rawURL
// (http or https), with a new secret; it gets the events numbered after
// after (the feed's number now).
func (s *Store) Add(rawURL string, types []string, number string, after uint64) (Hook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return Hook{}, fmt.Errorf("%w: webhook URL %q: give an http:// or https:// URL with a host and no user name or password", ErrInvalid, rawURL)
	}
	var events []string
	for _, t := range types {
		t = strings.TrimSpace(t)
		if !inbox.ValidFeedType(t) {
			return Hook{}, fmt.Errorf("%w: unknown event %q: use any of %s", ErrInvalid, t, strings.Join(inbox.FeedTypes, ","))
		}
		if !slices.Contains(events, t) {
			events = append(events, t)
		}
	}
	if len(events) == 0 {
		return Hook{}, fmt.Errorf("%w: name the events to send (--events), any of %s", ErrInvalid, strings.Join(inbox.FeedTypes, ","))
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return Hook{}, err
	}
	h := Hook{URL: u.String(), Events: events, Number: number, Secret: hex.EncodeToString(key[:]),
		Created: s.now().UTC(), After: after}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHooks)
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		h.ID = "wh" + strconv.FormatUint(n, 10)
		v, err := json.Marshal(&h)
		if err != nil {
			return err
		}
		return b.Put([]byte(h.ID), v)
	})
	if err != nil {
		return Hook{}, err
	}
	s.signal()
	return h, nil
}

// Hooks lists every webhook, oldest first, secrets included.
func (s *Store) Hooks() ([]Hook, error) {
	out := []Hook{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHooks).ForEach(func(k, v []byte) error {
			var h Hook
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("webhook %s: %w", k, err)
			}
			out = append(out, h)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return hookOrder(out[i].ID) < hookOrder(out[j].ID) })
	return out, err
}

func hookOrder(id string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimPrefix(id, "wh"), 10, 64)
	return n
}

func getHook(tx *bolt.Tx, id string) (Hook, error) {
	var h Hook
	v := tx.Bucket(bucketHooks).Get([]byte(id))
	if v == nil {
		return h, fmt.Errorf("%w: no webhook %q: see \"partyline webhook list\"", ErrNotFound, id)
	}
	return h, json.Unmarshal(v, &h)
}

// Hook returns one webhook.
func (s *Store) Hook(id string) (Hook, error) {
	var h Hook
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		h, err = getHook(tx, id)
		return err
	})
	return h, err
}

// Remove deletes a webhook with its queue and its attempts.
func (s *Store) Remove(id string) (Hook, error) {
	var h Hook
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if h, err = getHook(tx, id); err != nil {
			return err
		}
		if err := tx.Bucket(bucketHooks).Delete([]byte(id)); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketQueue, bucketAttempts} {
			if tx.Bucket(b).Bucket([]byte(id)) != nil {
				if err := tx.Bucket(b).DeleteBucket([]byte(id)); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketPending).Delete([]byte(id))
	})
	if err != nil {
		return Hook{}, err
	}
	s.signal()
	return h, nil
}

// Pending is how many events wait in the webhook's queue.
func (s *Store) Pending(id string) (int, error) {
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		n = readU64(tx.Bucket(bucketPending).Get([]byte(id)))
		return nil
	})
	return int(n), err
}

// Attempts returns the webhook's newest attempts first, at most limit (0:
// all it keeps).
func (s *Store) Attempts(id string, limit int) ([]Attempt, error) {
	out := []Attempt{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if _, err := getHook(tx, id); err != nil {
			return err
		}
		b := tx.Bucket(bucketAttempts).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var a Attempt
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("webhook %s attempt %x: %w", id, k, err)
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// Cursor is the feed number the outbox has enqueued up to.
func (s *Store) Cursor() (uint64, error) {
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		n = readU64(tx.Bucket(bucketMeta).Get(keyCursor))
		return nil
	})
	return n, err
}

// render is the body every webhook gets for e.
func render(e *inbox.FeedEvent) (json.RawMessage, error) {
	return json.Marshal(Body{ID: strconv.FormatUint(e.Seq, 10), Type: e.Type, CreatedAt: e.At, Number: e.Number, Data: e.Data})
}

// enqueue puts each event into the queue of each hook that wants it and
// moves the cursor to upto, in one transaction; it returns the hooks whose
// queues grew. It reads the hooks in that transaction, so a hook added
// meanwhile misses nothing numbered after its After. A hook whose queue is
// full gets a Dropped attempt instead.
func (s *Store) enqueue(evs []inbox.FeedEvent, upto uint64, now time.Time) (map[string]bool, error) {
	grew := map[string]bool{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		clear(grew)
		var hooks []Hook
		err := tx.Bucket(bucketHooks).ForEach(func(k, v []byte) error {
			var h Hook
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("webhook %s: %w", k, err)
			}
			hooks = append(hooks, h)
			return nil
		})
		if err != nil {
			return err
		}
		pending := tx.Bucket(bucketPending)
		for i := range evs {
			e := &evs[i]
			var body json.RawMessage
			for _, h := range hooks {
				if !h.Wants(e) {
					continue
				}
				n := readU64(pending.Get([]byte(h.ID)))
				if n >= uint64(s.queueLimit()) {
					a := Attempt{Event: strconv.FormatUint(e.Seq, 10), Type: e.Type, At: now, Outcome: Dropped,
						Error: fmt.Sprintf("queue full (%d events waiting)", n)}
					if err := s.record(tx, h.ID, &a); err != nil {
						return err
					}
					continue
				}
				if body == nil {
					if body, err = render(e); err != nil {
						return err
					}
				}
				q, err := tx.Bucket(bucketQueue).CreateBucketIfNotExists([]byte(h.ID))
				if err != nil {
					return err
				}
				v, err := json.Marshal(entry{Seq: e.Seq, Type: e.Type, Body: body, Enqueued: now, Next: now})
				if err != nil {
					return err
				}
				if err := q.Put(u64(e.Seq), v); err != nil {
					return err
				}
				if err := pending.Put([]byte(h.ID), u64(n+1)); err != nil {
					return err
				}
				grew[h.ID] = true
			}
		}
		return tx.Bucket(bucketMeta).Put(keyCursor, u64(upto))
	})
	return grew, err
}

// skip moves the cursor to upto when there is no hook (nothing to enqueue
// up to there), in one transaction with that look; it reports whether it
// did.
func (s *Store) skip(upto uint64) (bool, error) {
	skipped := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketHooks).Cursor().First(); k != nil {
			return nil
		}
		skipped = true
		return tx.Bucket(bucketMeta).Put(keyCursor, u64(upto))
	})
	return skipped, err
}

// head is the oldest event waiting for the hook (ok false: none).
func (s *Store) head(id string) (e entry, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue).Bucket([]byte(id))
		if q == nil {
			return nil
		}
		k, v := q.Cursor().First()
		if k == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &e)
	})
	return e, ok, err
}

// settle records an attempt at the hook's head event: a Retrying one
// keeps it queued with its tries and next time, any other removes it.
func (s *Store) settle(id string, e entry, a *Attempt) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue).Bucket([]byte(id))
		if q == nil || q.Get(u64(e.Seq)) == nil {
			return nil // the hook was removed meanwhile
		}
		if a.Outcome == Retrying {
			e.Tries, e.Next = a.Try, *a.Next
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := q.Put(u64(e.Seq), v); err != nil {
				return err
			}
		} else {
			if err := q.Delete(u64(e.Seq)); err != nil {
				return err
			}
			pending := tx.Bucket(bucketPending)
			if n := readU64(pending.Get([]byte(id))); n > 0 {
				if err := pending.Put([]byte(id), u64(n-1)); err != nil {
					return err
				}
			}
		}
		return s.record(tx, id, a)
	})
}

// record appends an attempt to the hook's log, forgetting the oldest
// beyond KeepAttempts.
func (s *Store) record(tx *bolt.Tx, id string, a *Attempt) error {
	b, err := tx.Bucket(bucketAttempts).CreateBucketIfNotExists([]byte(id))
	if err != nil {
		return err
	}
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := b.Put(u64(n), v); err != nil {
		return err
	}
	if keep := s.keepAttempts(); n > keep {
		return b.Delete(u64(n - keep))
	}
	return nil
}

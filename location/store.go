package location

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucket = []byte("location.bindings")

// Binding is one registered device of a user.
type Binding struct {
	User      string    `json:"user"`
	Contact   string    `json:"contact"`   // the Contact URI as registered
	Source    string    `json:"source"`    // IP:port the REGISTER came from; requests go back there
	Transport string    `json:"transport"` // udp or tcp
	UserAgent string    `json:"user_agent,omitempty"`
	CallID    string    `json:"call_id"`
	CSeq      uint32    `json:"cseq"`
	Expires   time.Time `json:"expires"`
	Updated   time.Time `json:"updated"`
}

// Store holds every user's bindings.
type Store struct {
	db     *bolt.DB
	now    func() time.Time
	maxPer int
	mu     sync.RWMutex
	byUser map[string][]Binding // unexpired or not yet swept; each slice replaced, never edited
}

// Options for Open.
type Options struct {
	// MaxPerUser bounds a user's devices; when full the oldest binding is
	// replaced. Default 5.
	MaxPerUser int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Open loads the stored bindings.
func Open(db *bolt.DB, opt Options) (*Store, error) {
	s := &Store{db: db, now: opt.Now, maxPer: opt.MaxPerUser, byUser: map[string][]Binding{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxPer <= 0 {
		s.maxPer = 5
	}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var bs []Binding
			if err := json.Unmarshal(v, &bs); err != nil {
				return fmt.Errorf("bindings of %q: %w", k, err)
			}
			s.byUser[string(k)] = bs
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// Lookup returns the user's unexpired bindings, oldest first. The slice is
// shared: do not modify it.
func (s *Store) Lookup(user string) []Binding {
	s.mu.RLock()
	bs := s.byUser[user]
	s.mu.RUnlock()
	now := s.now()
	for i := range bs {
		if !bs[i].Expires.After(now) {
			return live(bs, now)
		}
	}
	return bs
}

func live(bs []Binding, now time.Time) []Binding {
	out := make([]Binding, 0, len(bs))
	for _, b := range bs {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// All returns every unexpired binding, by user then age.
func (s *Store) All() []Binding {
	s.mu.RLock()
	users := make([]string, 0, len(s.byUser))
	for u := range s.byUser {
		users = append(users, u)
	}
	s.mu.RUnlock()
	sort.Strings(users)
	var out []Binding
	for _, u := range users {
		out = append(out, s.Lookup(u)...)
	}
	return out
}

// Count is how many bindings are held (expired ones until swept included).
func (s *Store) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, bs := range s.byUser {
		n += len(bs)
	}
	return n
}

// Update is one REGISTER's changes to a user's bindings.
type Update struct {
	CallID    string
	CSeq      uint32
	Source    string
	Transport string
	UserAgent string
	RemoveAll bool      // Contact: * with Expires: 0
	Contacts  []Contact // in the request's order
}

// Contact is one Contact of a REGISTER; Expires 0 removes it.
type Contact struct {
	URI     string
	Expires time.Duration
}

// ErrOutOfOrder: the REGISTER repeats a Call-ID with a CSeq not above the
// stored one (RFC 3261 §10.3 step 7).
var ErrOutOfOrder = fmt.Errorf("out-of-order REGISTER")

// Apply runs one REGISTER against the user's bindings, commits the result,
// and returns the bindings now current. Nothing changes on error.
func (s *Store) Apply(user string, u Update) ([]Binding, error) {
	s.mu.Lock()
	now := s.now()
	cur := live(s.byUser[user], now)
	for _, b := range cur {
		if b.CallID == u.CallID && b.CSeq == u.CSeq {
			// The same REGISTER again (a retransmission the stateless
			// registrar handles anew): nothing changes, same answer.
			s.mu.Unlock()
			return cur, nil
		}
	}
	next := slices.Clone(cur)
	if u.RemoveAll {
		for _, b := range cur {
			if b.CallID == u.CallID && u.CSeq <= b.CSeq {
				s.mu.Unlock()
				return nil, ErrOutOfOrder
			}
		}
		next = nil
	}
	for _, c := range u.Contacts {
		i := slices.IndexFunc(next, func(b Binding) bool { return b.Contact == c.URI })
		if i >= 0 && next[i].CallID == u.CallID && u.CSeq <= next[i].CSeq {
			s.mu.Unlock()
			return nil, ErrOutOfOrder
		}
		if c.Expires <= 0 {
			if i >= 0 {
				next = slices.Delete(next, i, i+1)
			}
			continue
		}
		b := Binding{
			User: user, Contact: c.URI, Source: u.Source, Transport: u.Transport, UserAgent: u.UserAgent,
			CallID: u.CallID, CSeq: u.CSeq, Expires: now.Add(c.Expires), Updated: now,
		}
		if i >= 0 {
			next = slices.Delete(next, i, i+1) // refreshed: now the newest
		}
		if len(next) >= s.maxPer {
			oldest := 0
			for j := range next {
				if next[j].Updated.Before(next[oldest].Updated) {
					oldest = j
				}
			}
			next = slices.Delete(next, oldest, oldest+1)
		}
		next = append(next, b)
	}
	if len(next) == 0 {
		next = nil
	}
	// The user's slot is held while committing so changes to one user apply
	// in order; other users' changes share the commit through Batch.
	s.byUser[user] = next
	s.mu.Unlock()
	if err := s.persist(user); err != nil {
		s.mu.Lock()
		if slices.Equal(toKeys(s.byUser[user]), toKeys(next)) {
			s.byUser[user] = cur
		}
		s.mu.Unlock()
		return nil, err
	}
	return next, nil
}

func toKeys(bs []Binding) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Contact + "\x00" + b.CallID + "\x00" + b.Expires.String()
	}
	return out
}

// persist writes the user's bindings as they are in memory at commit time,
// so concurrent changes to one user can commit in any order and the file
// still ends up equal to memory. Batch may run the function twice: it only
// reads memory and writes.
func (s *Store) persist(user string) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		s.mu.RLock()
		bs := s.byUser[user]
		s.mu.RUnlock()
		b := tx.Bucket(bucket)
		if len(bs) == 0 {
			return b.Delete([]byte(user))
		}
		v, err := json.Marshal(bs)
		if err != nil {
			return err
		}
		return b.Put([]byte(user), v)
	})
}

// Sweep removes expired bindings from memory and the file; it returns how
// many it removed.
func (s *Store) Sweep() (int, error) {
	now := s.now()
	s.mu.Lock()
	changed := map[string][]Binding{}
	removed := 0
	for u, bs := range s.byUser {
		l := live(bs, now)
		if len(l) != len(bs) {
			removed += len(bs) - len(l)
			if len(l) == 0 {
				l = nil
				delete(s.byUser, u)
			} else {
				s.byUser[u] = l
			}
			changed[u] = l
		}
	}
	s.mu.Unlock()
	if len(changed) == 0 {
		return 0, nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for u := range changed {
			// Write what is current now: a REGISTER may have come in meanwhile.
			s.mu.RLock()
			cur := s.byUser[u]
			s.mu.RUnlock()
			if len(cur) == 0 {
				if err := b.Delete([]byte(u)); err != nil {
					return err
				}
				continue
			}
			v, err := json.Marshal(cur)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(u), v); err != nil {
				return err
			}
		}
		return nil
	})
	return removed, err
}

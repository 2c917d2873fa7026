package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketSessions holds the login sessions: SHA-256 of the session id →
// session. A copy of the data file gives no one a live cookie.
var bucketSessions = []byte("api.sessions")

// session is one login.
type session struct {
	User    string    `json:"user"`
	Role    string    `json:"role"`  // the workspace role at login
	Stamp   string    `json:"stamp"` // acl.User.CredentialStamp at login
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"` // the last request, to a minute
}

// sessions is the session store on the workspace's bbolt file.
type sessions struct {
	db        *bolt.DB
	idle, max time.Duration

	mu        sync.Mutex
	lastSweep time.Time
}

// touchEvery: a session's last request is written at most this often.
const touchEvery = time.Minute

func openSessions(db *bolt.DB, idle, max time.Duration) (*sessions, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketSessions)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &sessions{db: db, idle: idle, max: max}, nil
}

func sessionKey(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// expired reports whether s has ended at now.
func (st *sessions) expired(s session, now time.Time) bool {
	return now.Sub(s.Seen) >= st.idle || now.Sub(s.Created) >= st.max
}

// create starts a session and returns its id (32 random bytes, base64url).
// It also forgets ended sessions, at most once an hour.
func (st *sessions) create(s session, now time.Time) (string, error) {
	b := make([]byte, 32)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	s.Created, s.Seen = now, now
	v, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	st.mu.Lock()
	sweep := now.Sub(st.lastSweep) > time.Hour
	if sweep {
		st.lastSweep = now
	}
	st.mu.Unlock()
	err = st.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if sweep {
			var old [][]byte
			b.ForEach(func(k, v []byte) error {
				var s session
				if json.Unmarshal(v, &s) != nil || st.expired(s, now) {
					old = append(old, k)
				}
				return nil
			})
			for _, k := range old {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return b.Put(sessionKey(id), v)
	})
	return id, err
}

var errNoSession = errors.New("no such session")

// get returns the live session id names; an ended one is deleted. A
// session's last request is written when it is older than touchEvery.
func (st *sessions) get(id string, now time.Time) (session, error) {
	key := sessionKey(id)
	var s session
	found := false
	err := st.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get(key)
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &s)
	})
	if err != nil {
		return s, err
	}
	if !found {
		return s, errNoSession
	}
	if st.expired(s, now) {
		st.delete(id)
		return s, errNoSession
	}
	if now.Sub(s.Seen) >= touchEvery {
		s.Seen = now
		v, _ := json.Marshal(s)
		err = st.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketSessions)
			if b.Get(key) == nil {
				return errNoSession // ended meanwhile
			}
			return b.Put(key, v)
		})
	}
	return s, err
}

// delete ends the session id (none: nothing happens).
func (st *sessions) delete(id string) error {
	return st.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Delete(sessionKey(id))
	})
}

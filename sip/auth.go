package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/icholy/digest"

	"github.com/partyline/partyline/acl"
)

// Directory is what the SIP side needs to know about users and trunks.
// acl.Directory satisfies it.
type Directory interface {
	Realm() string
	// UserHA1 returns the user's HA1 (SHA-256 when sha256, else MD5).
	UserHA1(user string, sha256 bool) (string, bool)
	// TrustedTrunk names the trunk that trusts traffic from src.
	TrustedTrunk(src netip.AddrPort) (string, bool)
	// Snapshot is the directory now: numbers, members, who rings.
	Snapshot() *acl.Snapshot
}

// nonces are self-validating: base64url(8-byte unix seconds || 16 bytes of
// HMAC-SHA256(key, seconds || realm)). Nothing is stored per challenge.
type nonces struct {
	key []byte
	ttl time.Duration
}

func newNonces(ttl time.Duration) nonces {
	key := make([]byte, 32)
	rand.Read(key)
	return nonces{key: key, ttl: ttl}
}

func (n nonces) mac(ts []byte, realm string) []byte {
	m := hmac.New(sha256.New, n.key)
	m.Write(ts)
	m.Write([]byte(realm))
	return m.Sum(nil)[:16]
}

func (n nonces) issue(now time.Time, realm string) string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	copy(b[8:], n.mac(b[:8], realm))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// check says whether the nonce is ours (valid) and, if so, whether it has
// expired (stale).
func (n nonces) check(nonce string, now time.Time, realm string) (valid, stale bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return false, false
	}
	if !hmac.Equal(b[8:], n.mac(b[:8], realm)) {
		return false, false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	if issued.After(now.Add(5 * time.Second)) {
		return false, false
	}
	return true, now.Sub(issued) > n.ttl
}

// challenges returns the WWW-/Proxy-Authenticate values, one per
// algorithm in the order given (RFC 8760: a client takes the first it
// supports).
func (n nonces) challenges(now time.Time, realm string, stale bool, algs []string) []string {
	nonce := n.issue(now, realm)
	out := make([]string, 0, len(algs))
	for _, alg := range algs {
		c := digest.Challenge{Realm: realm, Nonce: nonce, Algorithm: alg, QOP: []string{"auth"}, Stale: stale}
		out = append(out, c.String())
	}
	return out
}

// authOutcome is what checking one request's credentials found.
type authOutcome int

const (
	authNone   authOutcome = iota // no usable credentials: challenge
	authOK                        // verified
	authStale                     // right password, expired nonce: challenge with stale=true
	authFailed                    // wrong: challenge and count a failure
)

// dummyHA1 is used for unknown users so they cost the same as known ones.
var dummyHA1 = strings.Repeat("0", 64)

// verify checks the credentials of one request (the Authorization or
// Proxy-Authorization value) for method. It returns the user name the
// credentials prove.
func (n nonces) verify(dir Directory, header, method string, now time.Time) (string, authOutcome) {
	if header == "" || !digest.IsDigest(header) {
		return "", authNone
	}
	cred, err := digest.ParseCredentials(header)
	if err != nil || cred.Username == "" || cred.URI == "" || cred.Response == "" {
		return "", authFailed
	}
	realm := dir.Realm()
	if cred.Realm != realm {
		return "", authNone // credentials for another realm: not ours to judge
	}
	valid, stale := n.check(cred.Nonce, now, realm)
	if !valid {
		return "", authNone // a nonce we did not issue (or from before a restart): challenge afresh
	}
	var sha bool
	switch strings.ToUpper(cred.Algorithm) {
	case "", "MD5":
	case "SHA-256":
		sha = true
	default:
		return "", authFailed
	}
	var qop []string
	switch cred.QOP {
	case "":
	case "auth":
		if cred.Cnonce == "" || cred.Nc == 0 {
			return "", authFailed
		}
		qop = []string{"auth"}
	default:
		return "", authFailed
	}
	ha1, known := dir.UserHA1(cred.Username, sha)
	if !known {
		ha1 = dummyHA1[:32]
		if sha {
			ha1 = dummyHA1
		}
	}
	want, err := digest.Digest(&digest.Challenge{Realm: realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, QOP: qop, Opaque: cred.Opaque},
		digest.Options{Method: method, URI: cred.URI, Count: cred.Nc, Cnonce: cred.Cnonce, Username: cred.Username, A1: ha1})
	if err != nil {
		return "", authFailed
	}
	match := hmac.Equal([]byte(want.Response), []byte(strings.ToLower(cred.Response)))
	if !match || !known {
		return "", authFailed
	}
	if stale {
		return cred.Username, authStale
	}
	return cred.Username, authOK
}

// bans counts failed authentications per source IP: more than threshold
// within window bans the source for banFor.
type bans struct {
	threshold int
	window    time.Duration
	banFor    time.Duration

	mu  sync.Mutex
	src map[netip.Addr]*banEntry
}

type banEntry struct {
	failures []time.Time
	until    time.Time
}

func newBans(threshold int, window, banFor time.Duration) *bans {
	return &bans{threshold: threshold, window: window, banFor: banFor, src: map[netip.Addr]*banEntry{}}
}

// banned reports whether ip is banned now.
func (b *bans) banned(ip netip.Addr, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.src[ip]
	return e != nil && now.Before(e.until)
}

// fail records a failure; it returns true when this failure starts a ban.
func (b *bans) fail(ip netip.Addr, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.src[ip]
	if e == nil {
		if len(b.src) >= 100000 {
			b.pruneLocked(now)
		}
		e = &banEntry{}
		b.src[ip] = e
	}
	if now.Before(e.until) {
		return false
	}
	keep := e.failures[:0]
	for _, t := range e.failures {
		if now.Sub(t) < b.window {
			keep = append(keep, t)
		}
	}
	e.failures = append(keep, now)
	if len(e.failures) > b.threshold {
		e.until = now.Add(b.banFor)
		e.failures = nil
		return true
	}
	return false
}

// prune forgets sources with nothing recent.
func (b *bans) prune(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pruneLocked(now)
}

func (b *bans) pruneLocked(now time.Time) {
	for ip, e := range b.src {
		recent := len(e.failures) > 0 && now.Sub(e.failures[len(e.failures)-1]) < b.window
		if !recent && !now.Before(e.until) {
			delete(b.src, ip)
		}
	}
}

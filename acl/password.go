package acl

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"sync"

	"golang.org/x/crypto/argon2"
)

// PasswordHash is an argon2id hash of a user's password, kept for logins
// over HTTP. The SIP digest needs the HA1 values, which are one fast hash
// (MD5 or SHA-256) of the password: a copy of the data file lets anyone
// guess passwords against them by the billion a second. An argon2id hash
// costs tens of milliseconds and 19 MiB per guess. It protects the password
// fully only once HA1 is no longer stored beside it (a separate web
// password, or SIP over a proxy that keeps its own secrets); until then it
// keeps the login path from adding a second fast check.
//
// The parameters travel with the hash, so they can be raised for new
// hashes without breaking the old ones.
type PasswordHash struct {
	Algo    string `json:"algo"` // "argon2id"
	Time    uint32 `json:"t"`
	Memory  uint32 `json:"m"` // KiB
	Threads uint8  `json:"p"`
	Salt    []byte `json:"salt"`
	Hash    []byte `json:"hash"`
}

// Argon2id parameters for new hashes: OWASP's first recommendation
// (m=19 MiB, t=2, p=1), modest enough that a burst of logins on a small
// server stays within memory (the HTTP login also bounds how many run at
// once).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// HashPassword makes a new argon2id hash of password with a random salt.
func HashPassword(password string) PasswordHash {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	return PasswordHash{
		Algo: "argon2id", Time: argonTime, Memory: argonMemory, Threads: argonThreads, Salt: salt,
		Hash: argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen),
	}
}

// Verify reports whether password matches the hash, in constant time.
func (h PasswordHash) Verify(password string) bool {
	if h.Algo != "argon2id" || len(h.Hash) == 0 || h.Time == 0 || h.Memory == 0 || h.Threads == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), h.Salt, h.Time, h.Memory, h.Threads, uint32(len(h.Hash)))
	return subtle.ConstantTimeCompare(got, h.Hash) == 1
}

// dummyHash is verified for unknown users, so that a login for a name that
// does not exist takes as long as one for a name that does.
var dummyHash = sync.OnceValue(func() PasswordHash { return HashPassword("no such user") })

// VerifyPassword checks a login: the user's password against their argon2id
// hash. A user whose password was set before partyline kept such hashes
// has none: their password is checked against the SIP HA1 (SHA-256) they
// have, and on a match the argon2id hash is stored, so each such user
// goes through the fast check at most once. An unknown user costs the same
// time as a known one and fails.
func (d *Directory) VerifyPassword(name, password string) bool {
	u, ok := d.Snapshot().User(name)
	if !ok {
		dummyHash().Verify(password)
		return false
	}
	if u.Password != nil {
		return u.Password.Verify(password)
	}
	ha1 := HA1SHA256(name, d.Realm(), password)
	if subtle.ConstantTimeCompare([]byte(ha1), []byte(u.HA1SHA256)) != 1 {
		dummyHash().Verify(password)
		return false
	}
	h := HashPassword(password)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.upgrade(name, u.HA1SHA256, h)
	return true
}

// upgrade stores h for a user who still has no argon2id hash and whose
// HA1 is still ha1 (no password change raced the login). A failure to
// write is not the login's failure: the next login tries again.
func (d *Directory) upgrade(name, ha1 string, h PasswordHash) {
	cur := d.snap.Load()
	u, ok := cur.users[name]
	if !ok || u.Password != nil || u.HA1SHA256 != ha1 {
		return
	}
	nu := *u
	nu.Password = &h
	next := cur.clone()
	next.users[name] = &nu
	c := &change{cur: cur, next: next, users: map[string]bool{name: true}, numbers: map[string]bool{}, trunks: map[string]bool{}}
	if err := d.commit(c); err == nil {
		d.snap.Store(next)
	}
}

// CredentialStamp changes whenever the user's password is set (and when
// the user is removed and made again): a login session remembers it and
// ends when it no longer matches. It reveals nothing of the password.
func (u User) CredentialStamp() string {
	h := sha256.New()
	h.Write([]byte(u.Name + "\x00" + u.Created.String() + "\x00" + u.HA1SHA256 + "\x00"))
	if u.Password != nil {
		h.Write(u.Password.Salt)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

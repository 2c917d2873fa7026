package acl

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// User is one person of the workspace. It holds no password: only the
// digest HA1 values for the workspace realm and, for logins over HTTP, an
// argon2id hash (none for users whose password was set before partyline
// kept one).
type User struct {
	Name          string        `json:"name"`
	Email         string        `json:"email,omitempty"`
	Role          Role          `json:"role"`
	HA1MD5        string        `json:"ha1_md5"`
	HA1SHA256     string        `json:"ha1_sha256"`
	Password      *PasswordHash `json:"password,omitempty"`
	Tokens        []Token       `json:"tokens,omitempty"` // API tokens, hashed
	DefaultNumber string        `json:"default_number,omitempty"`
	Created       time.Time     `json:"created"`
}

// Number is a shared phone number and its members, in the order they joined
// (the default call flow rings them in that order).
type Number struct {
	E164    string    `json:"e164"`
	Name    string    `json:"name,omitempty"`
	Members []Member  `json:"members"`
	Created time.Time `json:"created"`
	// Flow is the custom call flow; empty: the default flow (members in
	// batches of RingCap, DefaultRingSeconds each, then voicemail).
	Flow *Flow `json:"flow,omitempty"`
	// Trunk carries the number's outbound calls; empty: the only trunk.
	Trunk string `json:"trunk,omitempty"`
	// Decline is what a phone's decline (603, any 6xx) does to a call:
	// DeclineEverywhere (the default, RFC 3261 §16.7) ends it for everyone
	// and the caller hears it; DeclinePersonal stops only that person's
	// phones, the others ring on.
	Decline string `json:"decline,omitempty"`
}

// What a decline does (Number.Decline; "" is DeclineEverywhere).
const (
	DeclineEverywhere = "everywhere"
	DeclinePersonal   = "personal"
)

// DefaultRingSeconds is how long one step rings unless the flow says.
const DefaultRingSeconds = 25

// Flow is a number's custom call flow: steps rung in order, then Then.
type Flow struct {
	Steps []Step `json:"steps"`
	Then  string `json:"then"` // voicemail | hangup
}

// Step rings some members at once for Seconds.
type Step struct {
	Users   []string `json:"users"`
	Seconds int      `json:"seconds"`
}

// Flow outcomes after the last step.
const (
	ThenVoicemail = "voicemail"
	ThenHangup    = "hangup"
)

// Member is one user's membership of a number.
type Member struct {
	User  string    `json:"user"`
	Role  Role      `json:"role"`
	Added time.Time `json:"added"`
}

// Role returns the user's role on the number, RoleNone for a non-member.
func (n *Number) Role(user string) Role {
	for i := range n.Members {
		if n.Members[i].User == user {
			return n.Members[i].Role
		}
	}
	return RoleNone
}

func (n *Number) owners() int {
	c := 0
	for i := range n.Members {
		if n.Members[i].Role == RoleOwner {
			c++
		}
	}
	return c
}

// HA1MD5 is the RFC 2617 HA1 of a password: hex MD5 of "user:realm:password".
func HA1MD5(user, realm, password string) string {
	h := md5.Sum([]byte(user + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

// HA1SHA256 is the RFC 7616/8760 HA1 with SHA-256.
func HA1SHA256(user, realm, password string) string {
	h := sha256.Sum256([]byte(user + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

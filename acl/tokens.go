package acl

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Token is a user's API token, for scripts: whoever presents its secret
// (Authorization: Bearer) acts as the user, with the user's rights as they
// are at that moment. The secret is shown once when the token is made;
// only its SHA-256 is kept (the secret is 256 random bits, so a fast hash
// is enough: there is nothing to guess offline). Tokens go with their
// user; a password change leaves them.
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Hash    string    `json:"hash"` // hex SHA-256 of the secret
	Created time.Time `json:"created"`
}

// TokenPrefix starts every token secret, so that a leaked one is easy to
// recognise (and to search for in logs and repositories).
const TokenPrefix = "plt_"

// MaxTokensPerUser bounds one user's tokens.
const MaxTokensPerUser = 20

func hashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// AddToken makes a token named name for user and returns it with its
// secret, which nothing keeps. Whoever may set the user's password may
// make them a token (the user themself, workspace owners, admins for
// admins and members).
func (d *Directory) AddToken(as, user, name string) (Token, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return Token{}, "", fmt.Errorf("%w: bad token name %q: 1 to 64 characters, no control characters (what the token is for, e.g. --name crm)", ErrInvalid, name)
	}
	b := make([]byte, 32)
	rand.Read(b)
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	var tok Token
	err := d.update(as, func(c *change) error {
		u, err := c.user(user)
		if err != nil {
			return err
		}
		if err := Decide(c.actor, UserSetPassword, Target{Role: u.Role, Self: c.actor.Name == user}); err != nil {
			return err
		}
		if len(u.Tokens) >= MaxTokensPerUser {
			return fmt.Errorf("%w: %s has %d tokens already: revoke one first (\"partyline token revoke ID\")", ErrInvalid, user, len(u.Tokens))
		}
		for _, t := range u.Tokens {
			if t.Name == name {
				return fmt.Errorf("%w: %s has a token named %q (%s): pick another name, or revoke it first", ErrExists, user, name, t.ID)
			}
		}
		for {
			id := make([]byte, 6)
			rand.Read(id)
			tok = Token{ID: "tok_" + hex.EncodeToString(id), Name: name, Hash: hashToken(secret), Created: c.now}
			if _, _, taken := c.cur.token(tok.ID); !taken {
				break
			}
		}
		nu := *u
		nu.Tokens = append(slices.Clone(u.Tokens), tok)
		c.putUser(&nu)
		return nil
	})
	if err != nil {
		return Token{}, "", err
	}
	return tok, secret, nil
}

// RevokeToken deletes the token id; it returns the token and its user.
// The same people who may make a user's tokens may revoke them.
func (d *Directory) RevokeToken(as, id string) (Token, string, error) {
	var tok Token
	var user string
	err := d.update(as, func(c *change) error {
		u, t, ok := c.cur.token(id)
		if !ok {
			return fmt.Errorf("%w: no token %q: see \"partyline token list\"", ErrNotFound, id)
		}
		if err := Decide(c.actor, UserSetPassword, Target{Role: u.Role, Self: c.actor.Name == u.Name}); err != nil {
			return err
		}
		nu := *u
		nu.Tokens = slices.DeleteFunc(slices.Clone(u.Tokens), func(x Token) bool { return x.ID == id })
		c.putUser(&nu)
		tok, user = t, u.Name
		return nil
	})
	return tok, user, err
}

// token finds a token by id.
func (s *Snapshot) token(id string) (*User, Token, bool) {
	for _, u := range s.users {
		for _, t := range u.Tokens {
			if t.ID == id {
				return u, t, true
			}
		}
	}
	return nil, Token{}, false
}

// TokenUser names the user whose token secret is presented; ok is false
// for anything else. It walks every user's tokens (a workspace has tens
// to thousands of users, at most MaxTokensPerUser tokens each).
func (s *Snapshot) TokenUser(secret string) (user string, tok Token, ok bool) {
	if !strings.HasPrefix(secret, TokenPrefix) {
		return "", Token{}, false
	}
	h := []byte(hashToken(secret))
	for _, u := range s.users {
		for _, t := range u.Tokens {
			if subtle.ConstantTimeCompare(h, []byte(t.Hash)) == 1 {
				return u.Name, t, true
			}
		}
	}
	return "", Token{}, false
}

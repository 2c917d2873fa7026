package acl

import (
	"errors"
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	d, path := newDir(t)
	seed(t, d)
	tok, secret, err := d.AddToken("mia", "mia", "crm")
	must(t, err)
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) != len(TokenPrefix)+43 || tok.Hash == "" || strings.Contains(tok.Hash, secret) {
		t.Fatalf("token %+v secret %q", tok, secret)
	}
	if raw := rawUser(t, path, d, "mia"); strings.Contains(raw, secret) || !strings.Contains(raw, tok.Hash) {
		t.Fatalf("stored record: %s", raw)
	}
	if u, got, ok := d.Snapshot().TokenUser(secret); !ok || u != "mia" || got.ID != tok.ID {
		t.Fatalf("TokenUser: %q %+v %v", u, got, ok)
	}
	for _, bad := range []string{"", secret + "x", secret[:len(secret)-1], strings.TrimPrefix(secret, TokenPrefix), tok.Hash} {
		if _, _, ok := d.Snapshot().TokenUser(bad); ok {
			t.Errorf("TokenUser(%q) accepted", bad)
		}
	}
	// Who may make whose tokens: as for passwords.
	for _, c := range []struct {
		as, user string
		ok       bool
	}{
		{"mia", "max", false}, {"mia", "olga", false}, {"adam", "olga", false}, {"adam", "max", true},
		{"adam", "adam", true}, {"olga", "adam", true}, {"", "olga", true},
	} {
		_, _, err := d.AddToken(c.as, c.user, "t-"+c.as)
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, ErrForbidden)) {
			t.Errorf("AddToken as %q for %s: %v", c.as, c.user, err)
		}
	}
	if _, _, err := d.AddToken("mia", "mia", "crm"); !errors.Is(err, ErrExists) {
		t.Errorf("same name twice: %v", err)
	}
	for _, name := range []string{"", " ", "a\nb", strings.Repeat("x", 65)} {
		if _, _, err := d.AddToken("mia", "mia", name); !errors.Is(err, ErrInvalid) {
			t.Errorf("name %q: %v", name, err)
		}
	}
	// Revoking: the same people.
	if _, _, err := d.RevokeToken("max", tok.ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("max revokes mia's token: %v", err)
	}
	if _, _, err := d.RevokeToken("mia", "tok_nothing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	got, user, err := d.RevokeToken("adam", tok.ID)
	if err != nil || user != "mia" || got.ID != tok.ID {
		t.Fatalf("revoke: %+v %q %v", got, user, err)
	}
	if _, _, ok := d.Snapshot().TokenUser(secret); ok {
		t.Fatal("a revoked token still works")
	}
	// A removed user's tokens go with them, also for a new user of the same name.
	_, secret2, err := d.AddToken("", "max", "script")
	must(t, err)
	must(t, d.RemoveUser("", "max"))
	must(t, d.AddUser("", NewUser{Name: "max", Password: "password9"}))
	if _, _, ok := d.Snapshot().TokenUser(secret2); ok {
		t.Fatal("a removed user's token works for the new user of that name")
	}
	// The limit.
	for i := 0; i < MaxTokensPerUser; i++ {
		_, _, err = d.AddToken("", "mo", "n"+strings.Repeat("x", i))
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.AddToken("", "mo", "one-more"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "revoke one first") {
		t.Errorf("over the limit: %v", err)
	}
}

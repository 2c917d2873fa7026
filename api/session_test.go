package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline/admin"
)

func TestLoginLogout(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	r := c.do("POST", "/api/v1/session", map[string]string{"user": "mia", "password": "secret-mia"})
	if r.status != 200 || !strings.Contains(r.body, `"user":"mia"`) || !strings.Contains(r.body, `"role":"member"`) {
		t.Fatalf("login: %d %s", r.status, r)
	}
	cookie := r.header.Get("Set-Cookie")
	for _, want := range []string{sessionCookie + "=", "Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=604800"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("Secure cookie over plain HTTP: %q", cookie)
	}
	id := strings.TrimPrefix(strings.SplitN(cookie, ";", 2)[0], sessionCookie+"=")
	if len(id) != 43 {
		t.Errorf("session id %q is not 32 bytes base64url", id)
	}
	var me meView
	r = c.do("GET", "/api/v1/me", nil)
	r.decode(t, &me)
	if r.status != 200 || me.User != "mia" || me.Auth != "session" || len(me.Numbers) != 1 || me.Numbers[0].Number != N2 || me.Numbers[0].Role != "owner" {
		t.Fatalf("me: %d %s", r.status, r)
	}
	if r = c.do("DELETE", "/api/v1/session", nil); r.status != 200 || !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d %s %q", r.status, r, r.header.Get("Set-Cookie"))
	}
	if r = c.do("GET", "/api/v1/me", nil); r.status != 401 {
		t.Fatalf("me after logout: %d %s", r.status, r)
	}
	// The old cookie, replayed, is dead on the server too.
	old := e.client()
	if r = old.do("GET", "/api/v1/me", nil, "Cookie", sessionCookie+"="+id); r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("replayed cookie after logout: %d %s", r.status, r)
	}
	// Logging out twice is fine.
	if r = c.do("DELETE", "/api/v1/session", nil); r.status != 200 {
		t.Fatalf("second logout: %d %s", r.status, r)
	}
	if r = e.client().do("GET", "/api/v1/me", nil); r.status != 401 || r.errText() == "" {
		t.Fatalf("me without a login: %d %s", r.status, r)
	}
}

// TestLoginFailuresLookAlike: a wrong password and an unknown user get the
// same answer.
func TestLoginFailuresLookAlike(t *testing.T) {
	e := newEnv(t)
	wrong := e.client().do("POST", "/api/v1/session", map[string]string{"user": "mia", "password": "not-her-password"})
	unknown := e.client().do("POST", "/api/v1/session", map[string]string{"user": "ghost", "password": "not-her-password"})
	if wrong.status != 401 || unknown.status != 401 || wrong.body != unknown.body || wrong.header.Get("Set-Cookie") != "" {
		t.Fatalf("wrong password %d %s; unknown user %d %s", wrong.status, wrong, unknown.status, unknown)
	}
	if r := e.client().do("POST", "/api/v1/session", map[string]string{"user": "mia"}); r.status != 400 || r.errText() != `bad JSON: missing field "password"` {
		t.Fatalf("no password: %d %s", r.status, r)
	}
}

// TestLoginBan: SIP's thresholds and log line. Six wrong passwords for mia
// from one address ban mia from it for 5 minutes (even her right password
// is refused), not max; more than 20 for any users ban the address.
func TestLoginBan(t *testing.T) {
	e := newEnv(t)
	try := func(user, pw string) reply {
		return e.client().do("POST", "/api/v1/session", map[string]string{"user": user, "password": pw})
	}
	for i := 0; i < 6; i++ {
		if r := try("mia", "guess-number-x"); r.status != 401 {
			t.Fatalf("failure %d: %d %s", i, r.status, r)
		}
	}
	r := try("mia", "secret-mia")
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("right password while banned: %d %s", r.status, r)
	}
	if !strings.Contains(e.logs.String(), "msg=security event=auth_ban src=127.0.0.1 user=mia for=5m0s") {
		t.Fatalf("no auth_ban line: %s", e.logs)
	}
	if r := try("max", "secret-max"); r.status != 200 {
		t.Fatalf("max from the same address: %d %s", r.status, r)
	}
	e.clock.advance(5*time.Minute + time.Second)
	if r := try("mia", "secret-mia"); r.status != 200 {
		t.Fatalf("mia after the ban: %d %s", r.status, r)
	}
	// Names tried from one address: the address is banned.
	for i := 0; i < 21; i++ {
		try("user"+strings.Repeat("x", i), "guess-number-y")
	}
	if r := try("max", "secret-max"); r.status != 429 {
		t.Fatalf("max after 21 names from the address: %d %s", r.status, r)
	}
	if !strings.Contains(e.logs.String(), "msg=security event=auth_ban src=127.0.0.1 for=5m0s") {
		t.Fatalf("no source auth_ban line: %s", e.logs)
	}
	// Unknown tokens count toward the address's ban as well.
	e.clock.advance(6 * time.Minute)
	s := e.client()
	s.header.Set("Authorization", "Bearer plt_nothing")
	for i := 0; i < 21; i++ {
		s.do("GET", "/api/v1/me", nil)
	}
	if r := e.bearer("max").do("GET", "/api/v1/me", nil); r.status != 429 {
		t.Fatalf("a token from an address banned for guessing tokens: %d %s", r.status, r)
	}
}

// TestSessionEnds: a session ends when the password or workspace role
// changes, when the user is removed, after 12 hours idle and 7 days in all.
func TestSessionEnds(t *testing.T) {
	e := newEnv(t)
	op := admin.Local(e.svc)
	run := func(opName string, args any) {
		t.Helper()
		if err := op.Call(context.Background(), "", opName, args, nil); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		change func()
	}{
		{"password", func() { run(admin.OpUserSetPassword, admin.UserArgs{Name: "mia", Password: "secret-mia"}) }},
		{"role", func() { run(admin.OpUserSetRole, admin.UserArgs{Name: "mia", Role: "admin"}) }},
		{"role back", func() { run(admin.OpUserSetRole, admin.UserArgs{Name: "mia", Role: "member"}) }},
		{"idle", func() { e.clock.advance(12 * time.Hour) }},
	}
	for _, tc := range cases {
		c := e.login("mia")
		other := e.login("max")
		if r := c.do("GET", "/api/v1/me", nil); r.status != 200 {
			t.Fatalf("%s: before: %d %s", tc.name, r.status, r)
		}
		tc.change()
		if r := c.do("GET", "/api/v1/me", nil); r.status != 401 {
			t.Errorf("%s: the session survived: %d %s", tc.name, r.status, r)
		}
		if tc.name != "idle" {
			if r := other.do("GET", "/api/v1/me", nil); r.status != 200 {
				t.Errorf("%s: max's session ended too: %d %s", tc.name, r.status, r)
			}
		}
	}
	// Active every 11 hours, it still ends after 7 days.
	c := e.login("mia")
	for h := 11; ; h += 11 {
		e.clock.advance(11 * time.Hour)
		r := c.do("GET", "/api/v1/me", nil)
		if h < 7*24 && r.status != 200 {
			t.Fatalf("active session ended after %d h: %d %s", h, r.status, r)
		}
		if h >= 7*24 {
			if r.status != 401 {
				t.Fatalf("session alive after %d h", h)
			}
			break
		}
	}
	// Removing the user ends theirs.
	c = e.login("max")
	run(admin.OpUserRemove, admin.UserArgs{Name: "max"})
	if r := c.do("GET", "/api/v1/me", nil); r.status != 401 {
		t.Fatalf("removed user's session: %d %s", r.status, r)
	}
}

// TestCrossOriginRefused: a state change a browser says comes from
// another site is refused, the login too; the same origin, and scripts
// without browser headers, pass.
func TestCrossOriginRefused(t *testing.T) {
	e := newEnv(t)
	c := e.login("mo")
	s := e.items[N]
	path := "/api/v1/conversations/" + s.conv + "/state"
	for _, h := range [][]string{
		{"Origin", "https://evil.example"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
	} {
		if r := c.do("POST", path, map[string]string{"state": "done"}, h...); r.status != 403 || !strings.Contains(r.errText(), "cross-origin") {
			t.Errorf("%v: %d %s", h, r.status, r)
		}
		if r := e.client().do("POST", "/api/v1/session", map[string]string{"user": "mo", "password": "secret-mo"}, h...); r.status != 403 {
			t.Errorf("login with %v: %d %s", h, r.status, r)
		}
	}
	if cv, _ := e.box.Conversation(s.conv); cv.State == "done" {
		t.Fatal("a refused request changed the state")
	}
	if r := c.do("GET", "/api/v1/me", nil, "Sec-Fetch-Site", "cross-site"); r.status != 200 {
		t.Errorf("a cross-site GET: %d %s", r.status, r)
	}
	if r := c.do("POST", path, map[string]string{"state": "done"}, "Origin", e.srv.URL, "Sec-Fetch-Site", "same-origin"); r.status != 200 {
		t.Fatalf("same origin: %d %s", r.status, r)
	}
	if r := c.do("POST", path, map[string]string{"state": "open"}); r.status != 200 {
		t.Fatalf("no browser headers: %d %s", r.status, r)
	}
}

func TestTokenAuth(t *testing.T) {
	e := newEnv(t)
	var tok admin.TokenCreated
	op := admin.Local(e.svc)
	if err := op.Call(context.Background(), "", admin.OpTokenCreate, admin.TokenArgs{User: "mo", Name: "crm"}, &tok); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.header.Set("Authorization", "Bearer "+tok.Token)
	var me meView
	r := c.do("GET", "/api/v1/me", nil)
	r.decode(t, &me)
	if r.status != 200 || me.User != "mo" || me.Auth != "token" || me.Token != tok.ID {
		t.Fatalf("me with a token: %d %s", r.status, r)
	}
	// With the user's rights: mo's number, not mia's.
	if r := c.do("GET", "/api/v1/conversations/"+e.items[N].conv, nil); r.status != 200 {
		t.Fatalf("mo's conversation: %d %s", r.status, r)
	}
	if r := c.do("GET", "/api/v1/conversations/"+e.items[N2].conv, nil); r.status != 404 {
		t.Fatalf("mia's conversation with mo's token: %d %s", r.status, r)
	}
	if r := c.do("POST", "/api/v1/items/"+e.items[N].msg+"/comments", map[string]string{"text": "from a script"}); r.status != 201 || !strings.Contains(r.body, `"user":"mo"`) {
		t.Fatalf("comment with a token: %d %s", r.status, r)
	}
	// The header wins over a cookie: a wrong token is refused even with
	// a live session.
	sess := e.login("mia")
	if r := sess.do("GET", "/api/v1/me", nil, "Authorization", "Bearer plt_wrong"); r.status != 401 {
		t.Fatalf("wrong token with a session: %d %s", r.status, r)
	}
	for _, h := range []string{"Basic bW86c2VjcmV0LW1v", "Bearer", "Bearer " + tok.Token + "x", tok.Token} {
		if r := e.client().do("GET", "/api/v1/me", nil, "Authorization", h); r.status != 401 {
			t.Errorf("Authorization %q: %d %s", h, r.status, r)
		}
	}
	if err := op.Call(context.Background(), "", admin.OpTokenRevoke, admin.TokenArgs{ID: tok.ID}, nil); err != nil {
		t.Fatal(err)
	}
	if r := c.do("GET", "/api/v1/me", nil); r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="partyline"` {
		t.Fatalf("revoked token: %d %s", r.status, r)
	}
	// Logging out with a token touches no session.
	if r := c.do("DELETE", "/api/v1/session", nil); r.status != 200 {
		t.Fatalf("logout with a token: %d", r.status)
	}
	if r := sess.do("GET", "/api/v1/me", nil); r.status != http.StatusOK {
		t.Fatalf("mia's session: %d", r.status)
	}
}

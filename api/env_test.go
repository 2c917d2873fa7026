package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/config"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// The test workspace, the CLI matrix's: workspace owner olga, admin adam,
// members mia, max, nora, nadia, mo. Number N: nora (owner), nadia
// (admin), mo (member). Number N2: mia and max. Each number has a text, a
// call and a voicemail from an outside party.
const (
	N  = "+15551230001"
	N2 = "+15551230002"
)

type env struct {
	t     *testing.T
	srv   *httptest.Server
	api   *Server
	svc   *admin.Service
	dir   *acl.Directory
	box   *inbox.Store
	db    *bolt.DB
	logs  *syncBuffer
	clock *testClock
	items map[string]sample // by number
}

// sample is what one number holds.
type sample struct {
	conv, msg, call, vm string
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// seeded is the workspace's data file, made once (argon2id hashes are
// slow on purpose) and copied for each test.
var seeded = sync.OnceValues(func() ([]byte, map[string]sample) {
	dirPath, err := os.MkdirTemp("", "partyline-api")
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dirPath, "seed.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		panic(err)
	}
	dir, err := acl.Open(db, acl.Options{Realm: "test.example"})
	if err != nil {
		panic(err)
	}
	box, err := inbox.Open(db, nil)
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	users := [][2]string{{"olga", "owner"}, {"adam", "admin"}, {"mia", "member"}, {"max", "member"}, {"nora", "member"}, {"nadia", "member"}, {"mo", "member"}}
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, _ := acl.ParseRole(u[1])
			if err := dir.AddUser("", acl.NewUser{Name: u[0], Password: "secret-" + u[0], Role: r}); err != nil {
				panic(err)
			}
		}()
	}
	wg.Wait()
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	for _, n := range []string{N, N2} {
		_, err := dir.AddNumber("", n, "")
		must(err)
	}
	must(dir.AddMember("", N, "nora", acl.RoleOwner))
	must(dir.AddMember("", N, "nadia", acl.RoleAdmin))
	must(dir.AddMember("", N, "mo", acl.RoleMember))
	must(dir.AddMember("", N2, "mia", acl.RoleOwner))
	must(dir.AddMember("", N2, "max", acl.RoleMember))
	items := map[string]sample{}
	now := time.Now().UTC()
	for i, n := range []string{N, N2} {
		party := []string{"+15557654321", "+15557650000"}[i]
		m := inbox.Message{ID: box.NewID(), Number: n, Party: party, Direction: "inbound", Text: "where is my order?",
			ContentType: "text/plain", At: now, Status: inbox.MsgReceived}
		must(box.SaveMessage(&m))
		call := &inbox.Call{ID: box.NewID(), Number: n, Direction: "inbound", Remote: party, StartedAt: now, Disposition: inbox.WentToVoicemail, Branches: []inbox.Branch{}}
		vm := &inbox.Voicemail{ID: box.NewID(), Number: n, From: party, ReceivedAt: now, DurationS: 0.25, Codec: "PCMU", CallID: call.ID}
		call.VoicemailID = vm.ID
		pcm := make([]byte, 4000) // 0.25 s of 8 kHz 16-bit
		for j := range pcm {
			pcm[j] = byte(j)
		}
		must(box.SaveVoicemail(vm, pcm, call))
		convs, err := box.Conversations([]string{n}, "", 1)
		must(err)
		items[n] = sample{conv: convs[0].ID, msg: m.ID, call: call.ID, vm: vm.ID}
	}
	must(db.Close())
	b, err := os.ReadFile(path)
	must(err)
	os.RemoveAll(dirPath)
	return b, items
})

// newEnv serves the API on a copy of the seeded workspace, on a real
// loopback listener.
func newEnv(t *testing.T, tweak ...func(*Config)) *env {
	t.Helper()
	raw, items := seeded()
	cfg := config.Config{DataDir: t.TempDir(), Realm: "test.example"}.WithDefaults()
	if err := os.WriteFile(cfg.DBPath(), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(cfg.DBPath(), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := acl.Open(db, acl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	loc, err := location.Open(db, location.Options{})
	if err != nil {
		t.Fatal(err)
	}
	box, err := inbox.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	svc := admin.New(cfg, admin.Stores{Directory: dir, Location: loc, Inbox: box}, log)
	clock := &testClock{now: time.Now()}
	c := Config{Service: svc, Directory: dir, DB: db, Log: log, Now: clock.Now}
	for _, f := range tweak {
		f(&c)
	}
	a, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(func() {
		srv.Close()
		if err := box.Check(); err != nil {
			t.Error(err)
		}
		db.Close()
		if strings.Contains(logs.String(), "secret-") {
			t.Error("a password reached the log")
		}
	})
	return &env{t: t, srv: srv, api: a, svc: svc, dir: dir, box: box, db: db, logs: logs, clock: clock, items: items}
}

// client is one browser or script.
type client struct {
	e      *env
	hc     *http.Client
	header http.Header
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, header: http.Header{}}
}

// login is a client logged in as user.
func (e *env) login(user string) *client {
	e.t.Helper()
	c := e.client()
	if r := c.do("POST", "/api/v1/session", map[string]string{"user": user, "password": "secret-" + user}); r.status != 200 {
		e.t.Fatalf("login %s: %v", user, r)
	}
	return c
}

// bearer is a script with a token of user.
func (e *env) bearer(user string) *client {
	e.t.Helper()
	var tok admin.TokenCreated
	if err := admin.Local(e.svc).Call(context.Background(), "", admin.OpTokenCreate, admin.TokenArgs{User: user, Name: "test-" + time.Now().String()}, &tok); err != nil {
		e.t.Fatal(err)
	}
	c := e.client()
	c.header.Set("Authorization", "Bearer "+tok.Token)
	return c
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (r reply) String() string { return r.body }

// errText is the reply's {"error"}.
func (r reply) errText() string {
	var b errorBody
	json.Unmarshal([]byte(r.body), &b)
	return b.Error
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
}

// do sends a request; body is JSON-encoded unless it is a string or []byte.
func (c *client) do(method, path string, body any, hdr ...string) reply {
	c.e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, rd)
	if err != nil {
		c.e.t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

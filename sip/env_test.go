package sip

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

func init() {
	// The sipgo user agents tests use as phones and carriers log through
	// sipgo's default logger; keep test output for the tests.
	sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is a running server on 127.0.0.1 with a fresh workspace:
// users alice and bob (password "secret-<name>"), realm "test.example".
type env struct {
	t      testing.TB
	path   string
	db     *bolt.DB
	dir    *acl.Directory
	loc    *location.Store
	inbox  *inbox.Store
	saved  chan struct{} // a call record was written
	texts  chan struct{} // a text's deliveries or status were written
	srv    *Server
	clock  *clock
	log    *logBuffer
	addr   netip.AddrPort
	cancel context.CancelFunc
	done   chan error
	manual bool // the server's timers run on clock
	// routeKey signs Record-Route tokens, the same across restarts.
	routeKey []byte
}

const testRealm = "test.example"

// liveEnvs counts the test servers running (see env.stop).
var liveEnvs atomic.Int64

// newEnv starts a server; configure may adjust it before Start. Its
// timers are real; its Now is e.clock's.
func newEnv(t testing.TB, configure func(*Server)) *env {
	return startEnv(t, false, configure)
}

// newManualEnv is newEnv with every timer of the server on e.clock too:
// they fire only when the test moves the clock (e.clock.Advance).
func newManualEnv(t testing.TB, configure func(*Server)) *env {
	return startEnv(t, true, configure)
}

func startEnv(t testing.TB, manual bool, configure func(*Server)) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "p.db"), clock: newClock(), log: &logBuffer{}, manual: manual,
		routeKey: []byte("a test key for Record-Route tokens")}
	e.open(configure)
	for _, u := range []string{"alice", "bob"} {
		if err := e.dir.AddUser("", acl.NewUser{Name: u, Password: "secret-" + u}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// open opens the file and starts the server (again, after stop).
func (e *env) open(configure func(*Server)) {
	t := e.t
	db, err := bolt.Open(e.path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	if e.dir, err = acl.Open(db, acl.Options{Realm: testRealm}); err != nil {
		t.Fatal(err)
	}
	if e.loc, err = location.Open(db, location.Options{Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	if e.inbox, err = inbox.Open(db, e.clock.Now); err != nil {
		t.Fatal(err)
	}
	e.saved = make(chan struct{}, 1)
	e.texts = make(chan struct{}, 1)
	logged := notifyLog{e.inbox, e.saved, e.texts}
	e.srv = New(Deps{Directory: e.dir, Location: e.loc, Calls: logged, Texts: logged, Voicemail: logged, Contacts: e.inbox})
	e.srv.Listen = []string{"127.0.0.1:0"}
	e.srv.Log = slog.New(slog.NewTextHandler(e.log, nil))
	e.srv.Clock = realClock{now: e.clock.Now} // real timers
	e.srv.RouteKey = e.routeKey
	if e.manual {
		e.srv.Clock = e.clock
	}
	if configure != nil {
		configure(e.srv)
	}
	if err := e.srv.Start(); err != nil {
		t.Fatal(err)
	}
	liveEnvs.Add(1)
	e.addr = e.srv.Addrs()[0]
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- e.srv.Serve(ctx) }()
	t.Cleanup(e.stop)
}

// stop ends the server and closes the file; safe to call twice.
func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	<-e.done
	if err := e.inbox.Check(); err != nil {
		e.t.Error(err)
	}
	e.db.Close()
	e.cancel = nil
	if liveEnvs.Add(-1) == 0 {
		// The last server of the package stopped (parallel tests share
		// the process): nothing of ours may be left running.
		noLeaks(e.t)
	}
}

// noPanics fails the test when the server recovered a panic, with its log.
func (e *env) noPanics() {
	e.t.Helper()
	if p := e.srv.Stats().Panics; p != 0 {
		e.t.Fatalf("%d panics recovered:\n%s", p, e.log)
	}
}

// restart stops the server and starts it again on the same file.
func (e *env) restart(configure func(*Server)) {
	e.stop()
	e.open(configure)
}

// notifyLog signals every committed call record, so tests await writes.
type notifyLog struct {
	*inbox.Store
	saved chan struct{}
	texts chan struct{}
}

func (n notifyLog) UpdateMessage(m *inbox.Message) error {
	err := n.Store.UpdateMessage(m)
	select {
	case n.texts <- struct{}{}:
	default:
	}
	return err
}

func (n notifyLog) PutCall(c *inbox.Call) error {
	err := n.Store.PutCall(c)
	select {
	case n.saved <- struct{}{}:
	default:
	}
	return err
}

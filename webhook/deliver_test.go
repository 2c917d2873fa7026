package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/inbox"
)

const (
	numA  = "+15551230001"
	numB  = "+15551230002"
	party = "+15557654321"
)

// testClock is a Clock the test moves by hand.
type testClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*testTimer]struct{}
}

type testTimer struct {
	c     chan time.Time
	at    time.Time
	clock *testClock
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), timers: map[*testTimer]struct{}{}}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &testTimer{c: make(chan time.Time, 1), at: c.now.Add(d), clock: c}
	if d <= 0 {
		t.c <- c.now
	} else {
		c.timers[t] = struct{}{}
	}
	return t
}

// Advance moves the clock and fires the timers it passed.
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.timers {
		if !t.at.After(c.now) {
			t.c <- c.now
			delete(c.timers, t)
		}
	}
}

// Set moves the clock to at (never back).
func (c *testClock) Set(at time.Time) {
	if d := at.Sub(c.Now()); d > 0 {
		c.Advance(d)
	}
}

func (t *testTimer) C() <-chan time.Time { return t.c }
func (t *testTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	_, ok := t.clock.timers[t]
	delete(t.clock.timers, t)
	return ok
}

// workspace is the bbolt file with the inbox and the outbox on it, which
// a test closes and reopens as a restarted server does.
type workspace struct {
	t     *testing.T
	path  string
	clock *testClock
	db    *bolt.DB
	box   *inbox.Store
	hooks *Store
}

func newWorkspace(t *testing.T, clock *testClock) *workspace {
	w := &workspace{t: t, path: filepath.Join(t.TempDir(), "partyline.db"), clock: clock}
	w.open()
	t.Cleanup(w.close)
	return w
}

func (w *workspace) open() {
	w.t.Helper()
	db, err := bolt.Open(w.path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		w.t.Fatal(err)
	}
	w.db = db
	if w.box, err = inbox.Open(db, w.clock.Now); err != nil {
		w.t.Fatal(err)
	}
	if w.hooks, err = Open(db, w.clock.Now); err != nil {
		w.t.Fatal(err)
	}
}

// close checks the inbox and closes the file (once).
func (w *workspace) close() {
	if w.db == nil {
		return
	}
	if err := w.box.Check(); err != nil {
		w.t.Error(err)
	}
	w.db.Close()
	w.db = nil
}

// text stores a text in from party to number, as the carrier's arrives.
func (w *workspace) text(number, body string) inbox.Message {
	w.t.Helper()
	m := inbox.Message{ID: w.box.NewID(), Number: number, Party: party, Direction: "inbound", Text: body,
		ContentType: "text/plain", At: w.clock.Now(), Status: inbox.MsgReceived}
	if err := w.box.SaveMessage(&m); err != nil {
		w.t.Fatal(err)
	}
	w.clock.Advance(time.Millisecond) // ids from a fixed clock are unique per process only
	return m
}

// run starts a deliverer on the workspace; stop cancels it and waits for
// Run to return.
func (w *workspace) run(d *Deliverer) (stop func()) {
	d.Feed, d.Store, d.Clock = w.box, w.hooks, w.clock
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					w.t.Error(err)
				}
			case <-time.After(10 * time.Second):
				w.t.Error("Run did not return within 10 s of its context ending")
			}
		})
	}
	w.t.Cleanup(stop)
	return stop
}

// receiver is a webhook receiver: it verifies each request's signature
// with the secret and records the bodies it accepted, in order.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	secret string
	status int // what it answers; 0: 200
	got    []Body
	ids    []string // Partyline-Event-Id of each accepted request
	tries  int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	if err != nil || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("request %s %s, %v", req.Method, req.Header.Get("Content-Type"), err)
	}
	if _, err := Verify(r.secret, req.Header.Get(HeaderSignature), body, time.Time{}, 0); err != nil {
		r.t.Errorf("signature %q of %s: %v", req.Header.Get(HeaderSignature), body, err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.status != 0 {
		w.WriteHeader(r.status)
		return
	}
	var b Body
	if err := json.Unmarshal(body, &b); err != nil {
		r.t.Errorf("body %s: %v", body, err)
	}
	if req.Header.Get(HeaderEventID) != b.ID {
		r.t.Errorf("%s %q, body id %q", HeaderEventID, req.Header.Get(HeaderEventID), b.ID)
	}
	r.got = append(r.got, b)
	r.ids = append(r.ids, b.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) set(secret string, status int) {
	r.mu.Lock()
	r.secret, r.status = secret, status
	r.mu.Unlock()
}

func (r *receiver) accepted() []Body {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) attempts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tries
}

// waitFor polls cond (real time: the deliverer's goroutines run) for up
// to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// noDeliverers fails when a goroutine of this package is still running.
func noDeliverers(t *testing.T) {
	t.Helper()
	waitForQuiet := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "webhook.(*Deliverer)") {
			return
		}
		if time.Now().After(waitForQuiet) {
			t.Fatalf("deliverer goroutines left running:\n%s", stacks)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastAttempt is the newest attempt at the event (zero: none yet).
func lastAttempt(s *Store, hook, event string) Attempt {
	as, _ := s.Attempts(hook, 0)
	for _, a := range as {
		if a.Event == event {
			return a
		}
	}
	return Attempt{}
}

func seqs(bs []Body) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

// TestDeliverSignedOnce: a webhook gets each event of its types and
// number once, in order, signed, with the feed's data; another number's
// events and other types are not sent; nothing from before it was added.
func TestDeliverSignedOnce(t *testing.T) {
	clock := newTestClock()
	w := newWorkspace(t, clock)
	rcv := &receiver{t: t}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	w.text(numA, "before the webhook") // not sent: older than the webhook
	after, _ := w.box.FeedSeq()
	h, err := w.hooks.Add(srv.URL+"/hook", []string{inbox.EventMessageReceived, inbox.EventCommentCreated}, numA, after)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Secret) != 64 || h.ID != "wh1" {
		t.Fatalf("hook %+v: want id wh1 and a 64-hex-digit secret", h)
	}
	rcv.set(h.Secret, 0)
	stop := w.run(&Deliverer{})

	m := w.text(numA, "are you open?")
	w.text(numB, "another number's")
	cm, err := w.box.Comment(m.ID, "ann", "I'll answer")
	if err != nil {
		t.Fatal(err)
	}
	w.text(numA, "hello?")
	waitFor(t, "three events", func() bool { return len(rcv.accepted()) >= 3 })
	// Nothing more comes.
	w.text(numB, "still another number's")
	time.Sleep(50 * time.Millisecond)
	got := rcv.accepted()
	if types := []string{got[0].Type, got[1].Type, got[2].Type}; len(got) != 3 ||
		!slices.Equal(types, []string{inbox.EventMessageReceived, inbox.EventCommentCreated, inbox.EventMessageReceived}) {
		t.Fatalf("received %+v", got)
	}
	var md inbox.MessageData
	var cd inbox.CommentData
	if json.Unmarshal(got[0].Data, &md) != nil || md.MessageID != m.ID || md.Text != "are you open?" || got[0].Number != numA {
		t.Errorf("first: %+v", got[0])
	}
	if json.Unmarshal(got[1].Data, &cd) != nil || cd.CommentID != cm.ID || cd.Parent != m.ID || cd.User != "ann" {
		t.Errorf("second: %+v", got[1])
	}
	feed, _ := w.box.Feed(0, 0)
	for _, b := range got {
		n, _ := strconv.ParseUint(b.ID, 10, 64)
		if n <= after || n > uint64(len(feed)) || feed[n-1].Type != b.Type || !feed[n-1].At.Equal(b.CreatedAt) {
			t.Errorf("body %+v is not feed event %d", b, n)
		}
	}
	as, err := w.hooks.Attempts(h.ID, 0)
	if err != nil || len(as) != 3 || as[0].Outcome != Delivered || as[0].Status != 204 || as[0].Event != got[2].ID || as[0].Try != 1 {
		t.Fatalf("attempts %+v, %v", as, err)
	}
	if n, _ := w.hooks.Pending(h.ID); n != 0 {
		t.Fatalf("%d pending", n)
	}
	stop()
	noDeliverers(t)
}

// TestDeliverAcrossOutageAndRestart: the receiver answers 503, then is
// gone (connection refused) while the server restarts and more events come
// in without it; back up, it gets every event, in order, none lost.
func TestDeliverAcrossOutageAndRestart(t *testing.T) {
	clock := newTestClock()
	w := newWorkspace(t, clock)
	rcv := &receiver{t: t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rcv}
	go srv.Serve(ln)
	addr := ln.Addr().String()

	h, err := w.hooks.Add("http://"+addr+"/in", []string{inbox.EventMessageReceived, inbox.EventConversationUpdated}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	rcv.set(h.Secret, http.StatusServiceUnavailable)
	d := &Deliverer{}
	stop := w.run(d)
	var sent []string
	for i := range 3 {
		w.text(numA, "down "+strconv.Itoa(i))
	}
	// The head is tried, refused, and tried again after 10 s, 20 s.
	for try := 1; try <= 3; try++ {
		waitFor(t, "try "+strconv.Itoa(try), func() bool { return lastAttempt(w.hooks, h.ID, "1").Try == try })
		if try < 3 {
			clock.Set(*lastAttempt(w.hooks, h.ID, "1").Next)
		}
	}
	as, _ := w.hooks.Attempts(h.ID, 0)
	for i, a := range as {
		if a.Outcome != Retrying || a.Status != 503 || a.Event != "1" || a.Try != 3-i || a.Next == nil {
			t.Fatalf("attempt %d: %+v", i, a)
		}
	}
	if gap := as[0].Next.Sub(as[0].At); gap != 40*time.Second {
		t.Fatalf("third failure retries after %s, want 40 s", gap)
	}
	if rcv.attempts() != 3 {
		t.Fatalf("%d tries: the next event went before the head was delivered", rcv.attempts())
	}

	// The server stops (the receiver goes away too) and the file closes;
	// a command run without the server stores more texts.
	stop()
	noDeliverers(t)
	srv.Close()
	w.close()
	w.open()
	for i := range 2 {
		w.text(numA, "while stopped "+strconv.Itoa(i))
	}
	w.close()

	// The server starts again; the receiver is still gone.
	w.open()
	d = &Deliverer{}
	stop = w.run(d)
	w.text(numA, "after restart")
	clock.Advance(time.Hour)
	waitFor(t, "a refused try", func() bool {
		as, _ := w.hooks.Attempts(h.ID, 1)
		return len(as) == 1 && as[0].Try == 4 && as[0].Status == 0 && as[0].Error != ""
	})
	// 6 texts and the conversation's creation wait.
	waitFor(t, "7 pending", func() bool { n, _ := w.hooks.Pending(h.ID); return n == 7 })
	// The receiver comes back on its address.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the receiver's port was taken meanwhile: %v", err)
	}
	rcv.set(h.Secret, 0)
	srv = &http.Server{Handler: rcv}
	go srv.Serve(ln)
	defer srv.Close()
	clock.Advance(time.Hour)
	waitFor(t, "every event", func() bool { n, _ := w.hooks.Pending(h.ID); return n == 0 })
	feed, _ := w.box.Feed(0, 0)
	for _, e := range feed {
		sent = append(sent, strconv.FormatUint(e.Seq, 10))
	}
	if got := seqs(rcv.accepted()); !slices.Equal(got, sent) {
		t.Fatalf("received %v, want every event in order %v", got, sent)
	}
	stop()
	noDeliverers(t)
}

// TestGiveUpAfterADay: a receiver that always fails gets the event after
// 10 s, 20 s, 40 s ... at most an hour apart, the last try at 24 h, then
// it is given up, recorded, and the next event goes.
func TestGiveUpAfterADay(t *testing.T) {
	clock := newTestClock()
	w := newWorkspace(t, clock)
	rcv := &receiver{t: t}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	h, err := w.hooks.Add(srv.URL, []string{inbox.EventMessageReceived}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	rcv.set(h.Secret, http.StatusInternalServerError)
	w.text(numA, "first")
	start := clock.Now() // when it is enqueued: the deliverer starts now
	stop := w.run(&Deliverer{})
	var gaps []time.Duration
	for try := 1; ; try++ {
		var a Attempt
		waitFor(t, "try "+strconv.Itoa(try), func() bool { a = lastAttempt(w.hooks, h.ID, "1"); return a.Try == try })
		if a.Outcome == GivenUp {
			if !a.At.Equal(start.Add(24 * time.Hour)) {
				t.Fatalf("given up at %s, want 24 h after %s", a.At, start)
			}
			break
		}
		gaps = append(gaps, a.Next.Sub(a.At))
		if try == 2 {
			w.text(numA, "second") // waits behind the first
		}
		clock.Set(*a.Next)
	}
	want := []time.Duration{10, 20, 40, 80, 160, 320, 640, 1280, 2560}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(gaps[:len(want)], want) {
		t.Fatalf("first gaps %v, want %v", gaps[:len(want)], want)
	}
	for _, g := range gaps[len(want) : len(gaps)-1] {
		if g != time.Hour {
			t.Fatalf("gaps %v: want an hour after the first nine", gaps)
		}
	}
	if last := gaps[len(gaps)-1]; last <= 0 || last > time.Hour {
		t.Fatalf("last gap %s", last)
	}
	// The second event is next, and goes when the receiver is back.
	rcv.set(h.Secret, 0)
	waitFor(t, "the second event", func() bool { clock.Advance(time.Second); return len(rcv.accepted()) == 1 })
	if b := rcv.accepted()[0]; b.Type != inbox.EventMessageReceived || !strings.Contains(string(b.Data), `"text":"second"`) {
		t.Fatalf("after giving up: %+v", b)
	}
	stop()
	noDeliverers(t)
}

// TestRemoveStopsItsWorker: removing a webhook stops its deliveries and
// its goroutine; an added one starts at once.
func TestRemoveStopsItsWorker(t *testing.T) {
	clock := newTestClock()
	w := newWorkspace(t, clock)
	rcv := &receiver{t: t}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	stop := w.run(&Deliverer{})
	h, err := w.hooks.Add(srv.URL, []string{inbox.EventMessageReceived}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	rcv.set(h.Secret, 503)
	w.text(numA, "one")
	waitFor(t, "a try", func() bool { return rcv.attempts() == 1 })
	if _, err := w.hooks.Remove(h.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	time.Sleep(50 * time.Millisecond)
	if rcv.attempts() != 1 {
		t.Fatalf("%d tries after removal", rcv.attempts())
	}
	if _, err := w.hooks.Attempts(h.ID, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("attempts of a removed webhook: %v", err)
	}
	stop()
	noDeliverers(t)
}

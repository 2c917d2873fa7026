package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/partyline/partyline/inbox"
)

// Clock is the time the deliverer runs on: Now for records, signatures
// and backoff, NewTimer for the waits between tries. Tests give one they
// move by hand, so a day of retries takes no real time.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type wallClock struct{}

func (wallClock) Now() time.Time                 { return time.Now() }
func (wallClock) NewTimer(d time.Duration) Timer { return wallTimer{time.NewTimer(d)} }

type wallTimer struct{ t *time.Timer }

func (t wallTimer) C() <-chan time.Time { return t.t.C }
func (t wallTimer) Stop() bool          { return t.t.Stop() }

// Defaults of the Deliverer's fields.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultBackoff    = 10 * time.Second
	DefaultMaxBackoff = time.Hour
	DefaultGiveUp     = 24 * time.Hour
)

// Deliverer follows the inbox's feed into the outbox and delivers each
// webhook's queue in order, one event at a time, each until a 2xx or until
// it is GiveUp old. It is its own goroutines: SIP handling only commits
// feed events and never waits for it.
type Deliverer struct {
	Feed  *inbox.Store // the inbox whose feed it follows; required
	Store *Store       // the webhooks and their outbox; required
	Log   *slog.Logger // nil: discard
	Clock Clock        // nil: the wall clock
	// Client sends the requests (nil: one with Timeout that follows no
	// redirect: a 3xx is a failure).
	Client *http.Client
	// Timeout bounds one attempt, connection to response headers and body
	// (default 10 s).
	Timeout time.Duration
	// Backoff is the wait after an event's first failure, doubling after
	// each further failure up to MaxBackoff (defaults 10 s and 1 h).
	Backoff, MaxBackoff time.Duration
	// GiveUp is how long after it was enqueued an event is still tried
	// (default 24 h); then its last failure gives it up, recorded.
	GiveUp time.Duration
	// FeedPage is how many feed events one enqueueing reads (default 500).
	FeedPage int
}

func (d *Deliverer) clock() Clock {
	if d.Clock == nil {
		return wallClock{}
	}
	return d.Clock
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// worker is the goroutine delivering one webhook's queue.
type worker struct {
	wake   chan struct{}
	cancel context.CancelFunc
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run enqueues feed events as they commit and delivers them until ctx
// ends; it returns once every goroutine it started has stopped. Events
// committed while it did not run (the server down, a command run without
// it) are enqueued when it starts: the outbox remembers how far it got.
func (d *Deliverer) Run(ctx context.Context) error {
	if d.Feed == nil || d.Store == nil {
		return errors.New("webhook deliverer without a feed or a store")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Client == nil {
		d.Client = &http.Client{
			Timeout:       or(d.Timeout, DefaultTimeout),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	feed, unsubscribe := d.Feed.Subscribe()
	defer unsubscribe()
	workers := map[string]*worker{}
	var wg sync.WaitGroup
	defer func() {
		for _, w := range workers {
			w.cancel()
		}
		wg.Wait()
	}()
	for {
		hooks, err := d.Store.Hooks()
		if err == nil {
			d.follow(ctx, hooks, workers, &wg)
			err = d.pump(hooks, workers)
		}
		var retry Timer
		var again <-chan time.Time
		if err != nil {
			d.Log.Error("webhook outbox", "error", err)
			retry = d.clock().NewTimer(time.Second)
			again = retry.C()
		}
		select {
		case <-ctx.Done():
		case <-feed:
		case <-d.Store.Changed():
		case <-again:
		}
		if retry != nil {
			retry.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// follow starts a worker for each new hook and stops those of removed ones.
func (d *Deliverer) follow(ctx context.Context, hooks []Hook, workers map[string]*worker, wg *sync.WaitGroup) {
	live := map[string]bool{}
	for _, h := range hooks {
		live[h.ID] = true
		if workers[h.ID] != nil {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &worker{wake: make(chan struct{}, 1), cancel: cancel}
		workers[h.ID] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(wctx, h.ID, w.wake)
		}()
	}
	for id, w := range workers {
		if !live[id] {
			w.cancel()
			delete(workers, id)
		}
	}
}

// skipEvery is how many events without a webhook the cursor may lag.
const skipEvery = 1024

// pump moves the feed's new events into the queues, page by page, and
// wakes the workers whose queues grew.
func (d *Deliverer) pump(hooks []Hook, workers map[string]*worker) error {
	cursor, err := d.Store.Cursor()
	if err != nil {
		return err
	}
	if len(hooks) == 0 {
		// Nobody to send to: skip to the end (later hooks get later
		// events only), unless a hook came meanwhile. The cursor moves in
		// steps of skipEvery events, not on every one: each move is a
		// commit of the data file, and a busy server without webhooks
		// should not pay one per call.
		seq, err := d.Feed.FeedSeq()
		if err != nil || seq-cursor < skipEvery {
			return err
		}
		if skipped, err := d.Store.skip(seq); skipped || err != nil {
			return err
		}
	}
	for {
		evs, err := d.Feed.Feed(cursor, or(d.FeedPage, 500))
		if err != nil || len(evs) == 0 {
			return err
		}
		if first := evs[0].Seq; first > cursor+1 {
			d.Log.Warn("webhook events pruned from the feed before they were enqueued", "from", cursor+1, "to", first-1)
		}
		last := evs[len(evs)-1].Seq
		grew, err := d.Store.enqueue(evs, last, d.clock().Now())
		if err != nil {
			return err
		}
		for id := range grew {
			if w := workers[id]; w != nil {
				w.poke()
			}
		}
		cursor = last
	}
}

// work delivers one hook's queue, head first, until ctx ends or the hook
// is removed.
func (d *Deliverer) work(ctx context.Context, id string, wake <-chan struct{}) {
	clock := d.clock()
	// wait returns at the time until (zero: only when woken), when woken,
	// or (false) when ctx ends. A clock moved between reading it and
	// setting the timer is caught by the second look.
	wait := func(until time.Time) bool {
		var after <-chan time.Time
		if !until.IsZero() {
			t := clock.NewTimer(until.Sub(clock.Now()))
			defer t.Stop()
			if !clock.Now().Before(until) {
				return ctx.Err() == nil
			}
			after = t.C()
		}
		select {
		case <-ctx.Done():
			return false
		case <-wake:
		case <-after:
		}
		return true
	}
	pause := func() bool { return wait(clock.Now().Add(time.Second)) }
	for {
		e, ok, err := d.Store.head(id)
		if err != nil {
			d.Log.Error("webhook outbox", "webhook", id, "error", err)
			if !pause() {
				return
			}
			continue
		}
		if !ok {
			if !wait(time.Time{}) { // until woken
				return
			}
			continue
		}
		if clock.Now().Before(e.Next) {
			if !wait(e.Next) {
				return
			}
			continue
		}
		h, err := d.Store.Hook(id)
		if errors.Is(err, ErrNotFound) {
			return
		}
		if err != nil {
			d.Log.Error("webhook outbox", "webhook", id, "error", err)
			if !pause() {
				return
			}
			continue
		}
		a := d.attempt(ctx, &h, &e)
		if ctx.Err() != nil {
			return // stopping: this try does not count, the event stays
		}
		if err := d.Store.settle(id, e, a); err != nil {
			d.Log.Error("webhook outbox", "webhook", id, "error", err)
			if !pause() {
				return
			}
		}
	}
}

// attempt POSTs the event once and says what comes of it.
func (d *Deliverer) attempt(ctx context.Context, h *Hook, e *entry) *Attempt {
	clock := d.clock()
	start := clock.Now()
	a := &Attempt{Event: strconv.FormatUint(e.Seq, 10), Type: e.Type, At: start.UTC(), Try: e.Tries + 1}
	status, err := d.post(ctx, h, e, start)
	end := clock.Now()
	a.DurationMS = end.Sub(start).Milliseconds()
	a.Status = status
	switch {
	case err == nil && status >= 200 && status < 300:
		a.Outcome = Delivered
		return a
	case err != nil:
		a.Error = err.Error()
	}
	giveUp := e.Enqueued.Add(or(d.GiveUp, DefaultGiveUp))
	if !end.Before(giveUp) {
		a.Outcome = GivenUp
		d.Log.Warn("webhook event given up", "webhook", h.ID, "event", a.Event, "type", a.Type, "tries", a.Try, "status", status)
		return a
	}
	next := end.Add(d.backoff(a.Try))
	if next.After(giveUp) {
		next = giveUp // one last try at the deadline
	}
	next = next.UTC()
	a.Outcome, a.Next = Retrying, &next
	return a
}

// backoff is the wait after the try'th failure: Backoff doubling, at most
// MaxBackoff.
func (d *Deliverer) backoff(try int) time.Duration {
	b, top := or(d.Backoff, DefaultBackoff), or(d.MaxBackoff, DefaultMaxBackoff)
	for i := 1; i < try && b < top; i++ {
		b *= 2
	}
	return min(b, top)
}

// post sends the event's body, signed at t, and returns the status.
func (d *Deliverer) post(ctx context.Context, h *Hook, e *entry, t time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, or(d.Timeout, DefaultTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(e.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "partyline-webhook/1")
	req.Header.Set(HeaderEventID, strconv.FormatUint(e.Seq, 10))
	req.Header.Set(HeaderSignature, Sign(h.Secret, t, e.Body))
	resp, err := d.Client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the method and URL, which the record has
		}
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

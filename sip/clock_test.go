package sip

import (
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for tests; with newManualEnv the server's
// timers run on it too, and fire when Advance passes them.
type clock struct {
	mu     sync.Mutex
	t      time.Time
	timers []*fakeTimer
	armed  chan struct{} // a timer was made
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), armed: make(chan struct{}, 1)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock and fires every timer it passes, in order.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.t):
			t.ch <- c.t
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
}

func (c *clock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.t.Add(d), d: d, ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.t
	} else {
		c.timers = append(c.timers, t)
	}
	select {
	case c.armed <- struct{}{}:
	default:
	}
	return t
}

// awaitTimer waits (at most 5 s) until a timer of duration d is pending.
func (c *clock) awaitTimer(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		for _, ft := range c.timers {
			if ft.d == d && !ft.stopped {
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		select {
		case <-c.armed:
		case <-deadline:
			t.Fatalf("no %v timer was started", d)
		}
	}
}

type fakeTimer struct {
	c       *clock
	at      time.Time
	d       time.Duration
	ch      chan time.Time
	stopped bool // guarded by c.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && len(t.ch) == 0
	t.stopped = true
	return was
}

package sip

import "time"

// Clock is the time the server runs on: Now for records and expiry, and
// NewTimer for the timers of calls (ring steps, Timer C, waits for a
// branch's last word). Tests give a clock they move by hand, so a 25 s
// ring step takes no real time.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// realClock is the wall clock, with Now as given (the location store's).
type realClock struct{ now func() time.Time }

func (c realClock) Now() time.Time { return c.now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Now is the server's time now.
func (s *Server) Now() time.Time { return s.Clock.Now() }

package sip

// A fork's call record is written off the call's path, one write at a
// time, always the newest state.

import (
	"sync"

	"github.com/partyline/partyline/inbox"
)

// save has the record written as it is now, off the call's path: one
// writer per call at a time, always writing the newest state, so a later
// state never loses to an earlier one and ringing never waits for a
// commit. waitSaved waits for the writes in flight.
func (f *fork) save() {
	if f.private {
		return
	}
	f.mu.Lock()
	f.dirty = true
	if f.saving {
		f.mu.Unlock()
		return
	}
	f.saving = true
	f.mu.Unlock()
	if !f.s.goTracked(f.flush) {
		f.flush() // shutting down: write now, before the file closes
	}
}

func (f *fork) flush() {
	for {
		f.mu.Lock()
		if !f.dirty {
			f.saving = false
			f.savedCond().Broadcast()
			f.mu.Unlock()
			return
		}
		f.dirty = false
		c := *f.rec
		c.Branches = append([]inbox.Branch(nil), f.rec.Branches...)
		f.mu.Unlock()
		if err := f.s.calls.PutCall(&c); err != nil {
			f.s.Log.Error("saving call history", "call_id", c.CallID, "number", c.Number, "error", err)
		}
	}
}

// savedCond is signalled when no write is in flight; f.mu held.
func (f *fork) savedCond() *sync.Cond {
	if f.saved == nil {
		f.saved = sync.NewCond(&f.mu)
	}
	return f.saved
}

// waitSaved returns once no write of the record is in flight.
func (f *fork) waitSaved() {
	f.mu.Lock()
	for f.saving {
		f.savedCond().Wait()
	}
	f.mu.Unlock()
}

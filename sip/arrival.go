package sip

// Forking on arrival. sipgo hands a request to its handler only after
// parsing it a second time, creating its server transaction and starting a
// goroutine for it, and each hand-over waits for the Go scheduler. So a
// carrier's INVITE to a shared number is forked where admission parsed it,
// on the goroutine reading the socket: the branch INVITEs leave before
// sipgo has seen the request (BENCHMARKS.md, the fan-out). The handler
// sipgo then runs for it adopts the fork (inviteNumber): it gives the fork
// its server transaction, and from then on the call goes on as any other
// (ring timer, later steps, the caller's CANCEL, history). Until adopted,
// the branches' responses wait.
//
// Only what serve and routeRequest would fork without asking anything of
// the caller: an INVITE outside a dialog, from a trusted trunk, with
// Max-Forwards above 0, not looped, to a shared number, whose first step
// rings UDP devices only (a TCP branch may have to connect first, which
// the reading goroutine must not wait for). Anything else waits for the
// handler as before. A retransmission of a forked INVITE (same Call-ID,
// top Via branch and sent-by) is left to sipgo's transaction and never
// forks again; a fork no handler adopts within AdoptTimeout (its
// transaction could not be made) is cancelled and recorded as failed.

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/inbox"
)

// arrivals are the forks started on arrival, by arrivalKey, until their
// server transaction ends (never adopted: 32 s after being given up).
type arrivals struct {
	mu sync.Mutex
	m  map[string]*fork
}

// arrival is what a fork started on arrival carries.
type arrival struct {
	key     string
	rung    chan struct{} // closed once the first step's INVITEs went out
	adopted chan struct{} // closed once adopted or given up (orphaned)
	timer   *time.Timer   // AdoptTimeout
	// guarded by Server.arrivals.mu
	taken    bool
	orphaned bool
}

// arrivalKey identifies an INVITE and its retransmissions.
func arrivalKey(req *sip.Request) (string, bool) {
	via, cid := req.Via(), req.CallID()
	if via == nil || cid == nil {
		return "", false
	}
	branch := via.Params.GetOr("branch", "")
	if branch == "" {
		return "", false
	}
	return cid.Value() + "\x00" + branch + "\x00" + via.Host + "\x00" + string(req.CSeq().MethodName), true
}

// forkOnArrival forks req from the reading goroutine when serve and
// routeRequest would fork it to a shared number anyway. req then goes on
// to sipgo as it would have.
func (s *Server) forkOnArrival(req *sip.Request, src netip.AddrPort, transport string) {
	defer func() {
		if p := recover(); p != nil {
			// The handler forks it instead (or answers 500).
			s.recovered(p, "INVITE on arrival", req.CallID().Value())
		}
	}()
	if req.Method != sip.INVITE || req.To() == nil || req.To().Params.Has("tag") || req.CSeq() == nil {
		return
	}
	key, ok := arrivalKey(req)
	if !ok {
		return
	}
	if _, trusted := s.dir.TrustedTrunk(src); !trusted {
		return
	}
	if mf := req.MaxForwards(); mf == nil || mf.Val() == 0 || s.looped(req) {
		return
	}
	number, ok := s.sharedNumber(req.Recipient)
	if !ok {
		return
	}
	if s.arrived(key) {
		return // a retransmission: sipgo's transaction takes it
	}
	req.SetSource(src.String())
	req.SetTransport(transport)
	f := s.numberFork(req, nil, src, "", number)
	if f == nil || !udpOnly(f, 0) {
		return
	}
	a := &arrival{key: key, rung: make(chan struct{}), adopted: make(chan struct{})}
	f.arrival = a
	f.rung = 1
	s.arrivals.mu.Lock()
	if _, seen := s.arrivals.m[key]; seen {
		s.arrivals.mu.Unlock()
		return // the same INVITE, read meanwhile on a sibling socket, won
	}
	a.timer = time.AfterFunc(s.AdoptTimeout, func() { s.orphan(f) })
	s.arrivals.m[key] = f
	s.arrivals.mu.Unlock()
	defer close(a.rung) // even if ringing panics: the handler waits for it
	// The first step's INVITEs go out, then the call's record is queued.
	f.ring(0)
}

// arrived reports whether an INVITE with this key was forked on arrival.
func (s *Server) arrived(key string) bool {
	s.arrivals.mu.Lock()
	defer s.arrivals.mu.Unlock()
	_, ok := s.arrivals.m[key]
	return ok
}

// udpOnly: every device of the step is reached over UDP.
func udpOnly(f *fork, step int) bool {
	if step >= len(f.plan.Batches) {
		return false
	}
	for _, person := range f.plan.Batches[step] {
		for _, b := range person.Devices {
			if !strings.EqualFold(b.Transport, "udp") {
				return false
			}
		}
	}
	return true
}

// adopt gives the fork started on arrival of req its server transaction,
// once the fork's first step went out; nil when there is no such fork (or
// it was given up): the handler forks itself.
func (s *Server) adopt(req *sip.Request, tx sip.ServerTransaction) *fork {
	key, ok := arrivalKey(req)
	if !ok {
		return nil
	}
	s.arrivals.mu.Lock()
	f := s.arrivals.m[key]
	if f == nil || f.arrival.taken || f.arrival.orphaned {
		s.arrivals.mu.Unlock()
		return nil
	}
	a := f.arrival
	a.taken = true
	s.arrivals.mu.Unlock()
	<-a.rung // a retransmission read on a sibling socket can get here first
	a.timer.Stop()
	f.tx = tx
	// The key stays while the transaction lives, so that retransmissions
	// read meanwhile do not fork again.
	if !tx.OnTerminate(func(string, error) { s.forget(f) }) {
		s.forget(f)
	}
	close(a.adopted)
	return f
}

func (s *Server) forget(f *fork) {
	s.arrivals.mu.Lock()
	if s.arrivals.m[f.arrival.key] == f {
		delete(s.arrivals.m, f.arrival.key)
	}
	s.arrivals.mu.Unlock()
}

// orphan gives up a fork no handler adopted: its branches are cancelled
// and its record closed as failed. Its key stays until the caller's
// retransmissions have stopped (64*T1), so that they do not fork again.
func (s *Server) orphan(f *fork) {
	a := f.arrival
	<-a.rung
	s.arrivals.mu.Lock()
	if a.taken {
		s.arrivals.mu.Unlock()
		return
	}
	a.orphaned = true
	s.arrivals.mu.Unlock()
	s.Log.Warn("call forked on arrival never got its transaction: cancelling its branches",
		"call_id", f.req.CallID().Value(), "number", f.rec.Number)
	now := s.Now()
	f.mu.Lock()
	f.cancelled = true
	f.finished = true
	f.rec.EndedAt = &now
	f.rec.Disposition = inbox.Failed
	for _, b := range f.branches {
		if !b.done {
			f.endBranch(b, inbox.BranchNoAnswer, 0)
		}
	}
	f.mu.Unlock()
	close(a.adopted)
	f.cancelStep(-1, inbox.BranchNoAnswer, "")
	f.save()
	time.AfterFunc(32*time.Second, func() { s.forget(f) })
}

package sip

// A fork is one call being rung on many phones: its state, its steps and
// their timers, the final answer upstream. Its branches (one per phone)
// are in branch.go; the call's record in fork_record.go.

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// fork is one inbound call being forked.
type fork struct {
	s    *Server
	req  *sip.Request // as received
	tx   sip.ServerTransaction
	src  netip.AddrPort
	rec  *inbox.Call
	plan acl.RingPlan[location.Binding]
	// from, when set, replaces the caller's From towards the devices (the
	// shared number on outbound calls, the caller's name on inbound ones);
	// responses and in-dialog requests towards the caller get theirs back.
	from     *sip.FromHeader
	pai      string // P-Asserted-Identity towards the devices (outbound)
	private  bool   // a call between users: no shared-inbox record
	outbound bool   // towards a trunk: relay its failure as it is
	// callerFlow: the caller is a user's phone, reached at its source
	// (behind NAT) rather than by its Contact.
	callerFlow bool

	dirty       bool       // the record changed since the last write
	saving      bool       // a write is in flight
	saved       *sync.Cond // signalled when saving ends
	mu          sync.Mutex
	state       forkState
	ringingSent bool               // a 180 went upstream
	dialogs     map[string]*branch // by the To tag of each 2xx
	branches    []*branch
	best        *sip.Response // best failure so far
	events      chan struct{}

	tmpl *sip.Request // what every branch INVITE shares (branchRequest)
}

// forkState is where a call stands; fork.mu guards it. It only moves
// forward: stRinging, then stAnswered and stAnsweredUp, or stExpired, or
// stCallerGone.
type forkState int

const (
	stRinging    forkState = iota // branches ring; nothing final went upstream
	stAnswered                    // a 2xx won; it has not gone upstream yet
	stAnsweredUp                  // the winning 2xx went upstream
	stExpired                     // the flow ended unanswered (Timer C): the final answer is still ours
	stCallerGone                  // the caller cancelled: sipgo answered 487 upstream
	stDeclined                    // a phone declined for everyone (6xx): that goes upstream
)

// isAnswered: a 2xx won the call; f.mu held.
func (f *fork) isAnswered() bool { return f.state == stAnswered || f.state == stAnsweredUp }

// newFork is the one way a fork is made: the caller's INVITE and its
// transaction, where it came from, its record and who rings in which step.
// The caller sets from, pai, private and outbound before start.
func (s *Server) newFork(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, rec *inbox.Call, plan acl.RingPlan[location.Binding]) *fork {
	return &fork{s: s, req: req, tx: tx, src: src, rec: rec, plan: plan, events: make(chan struct{}, 1)}
}

// start records the call and rings until it is settled.
func (f *fork) start() {
	f.save()
	f.tx.OnCancel(func(r *sip.Request) { f.callerCancelled() })
	f.run()
}

// rewrite adapts a branch's INVITE: our identity for the caller when set,
// and no credentials of ours or caller-asserted identity downstream.
func (f *fork) rewrite(r *sip.Request) {
	removeHeaders(r, credentialHeaders...)
	removeHeaders(r, assertedIdentity...)
	if f.from != nil {
		r.ReplaceHeader(cloneFrom(f.from))
	}
	if f.pai != "" {
		r.AppendHeader(sip.NewHeader("P-Asserted-Identity", f.pai))
	}
}

// branchRequest builds the INVITE for one device. Every branch of a call
// shares one copy of the caller's INVITE, rewritten once (Server's
// branchRequest, then rewrite), and takes its header values as they are:
// once built, a branch's request is only read (by sipgo's transaction, and
// by cancelFor), so the branches differ only in Request-URI and Via, and
// a call to ten devices copies the caller's INVITE once, not ten times.
func (f *fork) branchRequest(b location.Binding) (*sip.Request, error) {
	var ruri sip.Uri
	if err := sip.ParseUri(b.Contact, &ruri); err != nil {
		return nil, fmt.Errorf("contact %q: %w", b.Contact, err)
	}
	if f.tmpl == nil {
		// Only ring builds branches, one step after the other.
		t, err := f.s.branchRequest(f.req, b)
		if err != nil {
			return nil, err
		}
		t.RemoveHeader("Via")          // ours, made per branch below
		t.RemoveHeader("Record-Route") // ours, on top: made per branch below
		f.rewrite(t)
		f.tmpl = t
	}
	r := sip.NewRequest(f.tmpl.Method, ruri)
	r.SipVersion = f.tmpl.SipVersion
	host, port := f.s.advertisedTo(b.Source, f.req)
	f.s.viaTo(r, host, port, strings.ToUpper(b.Transport), b.Source)
	calleeFlow := flowOf(b.Transport, b.Source) // a phone: the flow it registered over
	if f.outbound {
		calleeFlow = "" // a trunk: by its Contact
	}
	for _, rr := range f.s.recordRoutes(f, calleeFlow, host, port) {
		r.AppendHeader(rr)
	}
	for _, h := range f.tmpl.Headers() {
		r.AppendHeader(h)
	}
	r.SetBody(f.tmpl.Body())
	r.SetSource(f.tmpl.Source())
	return r, nil
}

func (f *fork) poke() {
	select {
	case f.events <- struct{}{}:
	default:
	}
}

// run rings each step in turn until an answer, the caller's CANCEL, or the
// end of the flow; it returns when the server transaction is settled.
func (f *fork) run() {
	timerC := f.s.Clock.NewTimer(f.s.TimerC)
	defer timerC.Stop()
	for step := range f.plan.Batches {
		if f.over() {
			break
		}
		f.ring(step)
		ringTime := f.s.RingTime
		if f.plan.Custom {
			ringTime = time.Duration(f.plan.Seconds[step]) * time.Second
		}
		ringTimer := f.s.Clock.NewTimer(ringTime)
		stepOver := false
		for !stepOver {
			select {
			case <-f.events:
				stepOver = f.over() || f.stepSettled(step)
			case <-ringTimer.C():
				f.cancelStep(step, inbox.BranchNoAnswer)
				stepOver = true
			case <-timerC.C():
				f.cancelStep(-1, inbox.BranchNoAnswer)
				stepOver = true
				f.mu.Lock()
				if f.state == stRinging {
					f.state = stExpired // stop the flow
				}
				f.mu.Unlock()
			}
		}
		ringTimer.Stop()
		// The next step starts at once; this one's cancelled branches end
		// on their own (a late 2xx from one still wins the call).
	}
	f.awaitSettled()
	f.finish()
}

// over: no more steps ring (answered, cancelled or expired).
func (f *fork) over() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state != stRinging
}

// stepSettled: every branch of the step has a final response.
func (f *fork) stepSettled(step int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.branches {
		if f.rec.Branches[b.idx].Step == step && !b.done {
			return false
		}
	}
	return true
}

// awaitSettled waits, at most SettleTimeout, for branches that rang to send their
// final response (487 after our CANCEL); a branch that never sent even a
// provisional is closed in the record as it stands, and its CANCEL still
// goes out should a 1xx arrive later (RFC 3261 §9.1).
func (f *fork) awaitSettled() {
	deadline := f.s.Clock.NewTimer(f.s.SettleTimeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		waiting := false
		for _, b := range f.branches {
			if !b.done && b.provisional && !f.isAnswered() {
				waiting = true
			}
		}
		f.mu.Unlock()
		if !waiting {
			break
		}
		select {
		case <-f.events:
			continue
		case <-deadline.C():
		}
		break
	}
	f.mu.Lock()
	for _, b := range f.branches {
		if !b.done && f.rec.Branches[b.idx].EndedAt == nil {
			outcome := b.cancelWant
			if outcome == "" {
				outcome = inbox.BranchUnreachable
			}
			f.endBranch(b, outcome, 0)
		}
	}
	f.mu.Unlock()
}

// ring starts one branch per device of every person of the step. The
// branch INVITEs go out one right after the other; what each needs only
// afterwards (its watcher, the record's write) waits until the last has
// left, as the fan-out is part of the delay a caller hears before ringing.
func (f *fork) ring(step int) {
	now := f.s.Now()
	var started []*branch
	defer func() {
		for _, b := range started {
			go b.watch()
		}
		f.save()
		f.poke()
	}()
	for _, person := range f.plan.Batches[step] {
		for _, bnd := range person.Devices {
			breq, err := f.branchRequest(bnd)
			if err != nil {
				f.s.Log.Warn("bad binding", "user", person.User, "error", err)
				continue
			}
			f.mu.Lock()
			if f.state != stRinging {
				// Answered (or cancelled) while this step was still
				// starting: the rest of it never rings.
				f.mu.Unlock()
				return
			}
			b := &branch{f: f, idx: len(f.rec.Branches), user: person.User, binding: bnd, req: breq, acked: make(chan struct{})}
			f.rec.Branches = append(f.rec.Branches, inbox.Branch{Step: step, User: person.User, Contact: bnd.Contact,
				Source: bnd.Source, Transport: bnd.Transport, StartedAt: now, Outcome: inbox.BranchRinging})
			f.branches = append(f.branches, b)
			f.mu.Unlock()
			if !f.outbound && f.s.flowGone(bnd) {
				// A phone registered over TCP is reached over its own
				// connection only (behind NAT a new one cannot reach it):
				// that connection gone, the branch fails at once, 430
				// Flow Failed (RFC 5626 §5.3), instead of ringing into
				// nothing until the step ends.
				f.mu.Lock()
				b.done = true
				f.endBranch(b, inbox.BranchUnreachable, 430)
				f.mu.Unlock()
				continue
			}
			tx, err := f.s.branchTransaction(breq)
			if err != nil {
				f.mu.Lock()
				b.done = true
				f.endBranch(b, inbox.BranchUnreachable, 0)
				f.mu.Unlock()
				continue
			}
			b.tx = tx
			tx.OnRetransmission(func(res *sip.Response) { f.s.relayStateless(res) })
			started = append(started, b)
		}
	}
}

// awaitAnswerRelayed waits (at most SettleTimeout) until the first 2xx has gone
// upstream through the server transaction. Its branch's watcher marks the
// call answered before it relays the 2xx, and this handler may see that
// first; sipgo ends a transaction without a final response as soon as its
// handler returns, and the 2xx then went out twice: through the ended
// transaction, and again statelessly (relay), so the caller ACKed twice.
func (f *fork) awaitAnswerRelayed() {
	deadline := f.s.Clock.NewTimer(f.s.SettleTimeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		relayed := f.state == stAnsweredUp
		f.mu.Unlock()
		if relayed {
			return
		}
		if h := f.s.hooks.awaitingRelay; h != nil {
			h(f)
		}
		select {
		case <-f.events:
		case <-deadline.C():
			return
		}
	}
}

// markRelayed: the winning 2xx went upstream.
func (f *fork) markRelayed() {
	f.mu.Lock()
	f.state = stAnsweredUp
	f.mu.Unlock()
}

// callerCancelled: the caller's CANCEL reached the transaction (sipgo has
// answered it 200 and the INVITE 487).
func (f *fork) callerCancelled() {
	f.mu.Lock()
	if f.state != stRinging {
		f.mu.Unlock()
		return
	}
	f.state = stCallerGone
	f.mu.Unlock()
	f.cancelStep(-1, inbox.BranchCallerCancelled)
	f.poke()
}

// finish answers upstream when no 2xx did, and closes the record.
func (f *fork) finish() {
	f.mu.Lock()
	answered, gone := f.isAnswered(), f.state == stCallerGone
	best := f.best
	f.mu.Unlock()
	if answered {
		f.awaitAnswerRelayed()
	}
	declined := f.state == stDeclined
	if !answered && !gone && !declined && f.plan.Then == acl.ThenVoicemail && !f.outbound && !f.private {
		f.s.voicemail(f)
		return
	}
	if !answered && !gone {
		// No answer, and no voicemail (a decline for everyone, a hangup
		// flow, a call out or between users): the best failure goes
		// upstream (RFC 3261 §16.7 step 6), a 3xx with its Contact (we
		// do not follow redirects); none: 480.
		f.respondBest(best)
	}
	if !answered {
		now := f.s.Now()
		f.mu.Lock()
		f.rec.EndedAt = &now
		f.rec.Disposition = inbox.Missed
		if f.outbound {
			f.rec.Disposition = inbox.Failed
		}
		f.mu.Unlock()
	}
	f.save()
}

// respondBest answers the caller with the best failure of the branches:
// a 503 as 500 (a 503 upstream would say this server is down, §16.7), none
// as 480.
func (f *fork) respondBest(best *sip.Response) {
	switch {
	case best == nil:
		f.s.respond(f.tx, f.req, 480, "Temporarily Unavailable")
	case best.StatusCode == 503:
		f.s.respond(f.tx, f.req, 500, "Server Internal Error")
	default:
		f.relay(best)
	}
}

// relay sends a branch's response upstream through the server transaction.
func (f *fork) relay(res *sip.Response) {
	up := res.Clone()
	up.RemoveHeader("Via") // ours, on top
	up.ReplaceHeader(cloneFrom(f.req.From()))
	up.SetDestination(f.req.Source())
	if err := f.tx.Respond(up); err != nil {
		// After the first 2xx the transaction is done: send statelessly.
		if res.StatusCode >= 200 && res.StatusCode < 300 {
			f.s.relayStateless(res)
		}
	}
}

package sip

// The forking proxy for calls to shared numbers: ring every member's
// devices in steps of at most acl.RingCap people, first 2xx wins, CANCEL the
// rest with Reason "Call completed elsewhere", a decline ends only that
// person's branches, record each step in the call history.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// CallLog is where the proxy records call history. inbox.Store satisfies it.
type CallLog interface {
	NewID() string
	PutCall(c *inbox.Call) error
}

// ContactBook names callers from the shared address book. inbox.Store
// satisfies it.
type ContactBook interface {
	ContactName(e164 string) (string, bool)
}

// branchPrefix marks Via branches we create (RFC 3261 magic cookie + ours).
const branchPrefix = "z9hG4bKpl"

const reasonElsewhere = `SIP;cause=200;text="Call completed elsewhere"`

func newBranchID() string {
	var b [10]byte
	rand.Read(b[:])
	return branchPrefix + hex.EncodeToString(b[:])
}

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
)

// isAnswered: a 2xx won the call; f.mu held.
func (f *fork) isAnswered() bool { return f.state == stAnswered || f.state == stAnsweredUp }

type branch struct {
	f       *fork
	idx     int // in rec.Branches
	user    string
	binding location.Binding
	req     *sip.Request // as sent
	tx      sip.ClientTransaction
	acked   chan struct{} // closed once the caller's ACK of this branch's 2xx went on
	ackOnce sync.Once

	// guarded by f.mu
	provisional bool // got a 1xx: CANCEL may be sent
	cancelWant  string
	cancelSent  bool
	done        bool
}

// newFork is the one way a fork is made: the caller's INVITE and its
// transaction, where it came from, its record and who rings in which step.
// The caller sets from, pai, private and outbound before start.
func (s *Server) newFork(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, rec *inbox.Call, plan acl.RingPlan[location.Binding]) *fork {
	return &fork{s: s, req: req, tx: tx, src: src, rec: rec, plan: plan, events: make(chan struct{}, 1)}
}

// inviteNumber forks an INVITE to a shared number, or goes on with the
// fork started when it arrived.
func (s *Server) inviteNumber(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, user, number string) {
	f := s.numberFork(req, tx, src, user, number)
	if f == nil {
		s.respond(tx, req, 404, "Not Found")
		return
	}
	f.start()
}

// numberFork sets up the fork of an INVITE to a shared number: who rings,
// the call's record, the caller's name; nil when the number has gone. user
// is the authenticated member who calls, "" for a trunk's call.
func (s *Server) numberFork(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, user, number string) *fork {
	snap := s.dir.Snapshot()
	plan, ok := acl.WhoRings(snap, number, s.loc.Lookup)
	if !ok {
		return nil
	}
	now := s.Now()
	rec := &inbox.Call{
		ID: s.calls.NewID(), Number: number, Direction: "inbound", Remote: req.From().Address.User,
		CallID: req.CallID().Value(), StartedAt: now, Disposition: inbox.Ringing,
		Skipped: plan.Skipped, Branches: []inbox.Branch{},
	}
	f := s.newFork(req, tx, src, rec, plan)
	// Ringing phones show who calls: the shared address book's name for
	// the caller's number, else the number.
	from := cloneFrom(req.From())
	from.DisplayName = rec.Remote
	if book := s.contacts; book != nil {
		if e, err := acl.NormalizeE164(rec.Remote); err == nil {
			if name, ok := book.ContactName(e); ok {
				from.DisplayName = name
			}
		}
	}
	f.from = from
	if user != "" {
		// A member's phone: the member, whatever its From claims.
		rec.Remote = user
		f.from, f.pai = s.userFrom(req, user), s.userPAI(user)
	}
	return f
}

// userFrom is the From a user's request carries onward: the authenticated
// user's address in our realm, with the request's tag. What the phone put
// in From (another user, a shared number, a display name) is a claim we
// do not pass on.
func (s *Server) userFrom(req *sip.Request, user string) *sip.FromHeader {
	from := cloneFrom(req.From())
	from.DisplayName = user
	from.Address = sip.Uri{Scheme: "sip", User: user, Host: s.dir.Realm()}
	return from
}

// userPAI is the P-Asserted-Identity we vouch for an authenticated user.
func (s *Server) userPAI(user string) string {
	return "<sip:" + user + "@" + s.dir.Realm() + ">"
}

// start records the call and rings until it is settled.
func (f *fork) start() {
	f.save()
	f.tx.OnCancel(func(r *sip.Request) { f.callerCancelled() })
	f.run()
}

// inviteUser rings one user's devices: a call between colleagues, not part
// of any shared inbox.
func (s *Server) inviteUser(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, caller, callee string) {
	devs := s.loc.Lookup(callee)
	if len(devs) == 0 {
		s.respond(tx, req, 480, "Temporarily Unavailable")
		return
	}
	plan := acl.RingPlan[location.Binding]{Batches: [][]acl.Ringing[location.Binding]{{{User: callee, Devices: devs}}},
		Seconds: []int{int(s.TimerC / time.Second)}, Custom: true, Then: acl.ThenHangup}
	rec := &inbox.Call{ID: "user-call", Direction: "internal", Remote: caller, CallID: req.CallID().Value(), StartedAt: s.Now(), Branches: []inbox.Branch{}}
	f := s.newFork(req, tx, src, rec, plan)
	f.private, f.from, f.pai = true, s.userFrom(req, caller), s.userPAI(caller)
	f.start()
}

// inviteOut sends a member's call to the outside world through the trunk
// of the shared number they call as, with that number as caller ID.
func (s *Server) inviteOut(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, user, dest string) {
	snap := s.dir.Snapshot()
	number, ok := snap.OutboundNumber(user, req.From().Address.User)
	if !ok {
		s.respond(tx, req, 403, "Forbidden")
		return
	}
	trunk, ok := snap.OutboundTrunk(number)
	if !ok {
		s.Log.Warn("no trunk for outbound call", "number", number, "user", user)
		s.respond(tx, req, 503, "Service Unavailable")
		return
	}
	target, err := resolveHostPort(trunk.Address)
	if err != nil {
		s.Log.Warn("trunk address does not resolve", "trunk", trunk.Name, "error", err)
		s.respond(tx, req, 503, "Service Unavailable")
		return
	}
	host, _, _ := net.SplitHostPort(trunk.Address)
	bnd := location.Binding{User: trunk.Name, Contact: "sip:" + dest + "@" + hostPort(host, target.Port()), Source: target.String(), Transport: "udp"}
	plan := acl.RingPlan[location.Binding]{Batches: [][]acl.Ringing[location.Binding]{{{User: trunk.Name, Devices: []location.Binding{bnd}}}},
		Seconds: []int{int(s.TimerC / time.Second)}, Custom: true, Then: acl.ThenHangup}
	rec := &inbox.Call{ID: s.calls.NewID(), Number: number, Direction: "outbound", Remote: dest, Member: user,
		CallID: req.CallID().Value(), StartedAt: s.Now(), Disposition: inbox.Ringing, Branches: []inbox.Branch{}}
	from := cloneFrom(req.From())
	from.Address = sip.Uri{Scheme: "sip", User: number, Host: host}
	from.DisplayName = ""
	if n, ok := snap.Number(number); ok {
		from.DisplayName = n.Name
	}
	f := s.newFork(req, tx, src, rec, plan)
	f.from, f.pai, f.outbound = from, "<sip:"+number+"@"+host+">", true
	f.start()
}

func hostPort(host string, port uint16) string {
	return net.JoinHostPort(host, fmt.Sprint(port))
}

// resolveHostPort turns HOST:PORT into an address (the first A/AAAA).
func resolveHostPort(hp string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a, uint16(p)), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolving %s: %w", host, err)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(p)), nil
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
		t.RemoveHeader("Via") // ours, made per branch below
		f.rewrite(t)
		f.tmpl = t
	}
	r := sip.NewRequest(f.tmpl.Method, ruri)
	r.SipVersion = f.tmpl.SipVersion
	host, port := f.s.advertised(f.req)
	f.s.viaTo(r, host, port, strings.ToUpper(b.Transport), b.Source)
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

// branchTransaction sends a branch's INVITE in a client transaction. Over
// UDP that never waits (the device's address is an IP and port, and the
// socket is ours); over TCP or TLS it may connect first, for at most
// ConnectTimeout.
func (s *Server) branchTransaction(r *sip.Request) (sip.ClientTransaction, error) {
	ctx := context.Background()
	if r.Transport() != "UDP" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.ConnectTimeout)
		defer cancel()
	}
	return s.client.TransactionRequest(ctx, r, keepAsBuilt)
}

// keepAsBuilt is a no-op option: it stops sipgo from building headers, as
// branchRequest set them.
func keepAsBuilt(*sipgo.Client, *sip.Request) error { return nil }

// watch reads one branch's responses until its final one.
func (b *branch) watch() {
	f := b.f
	for {
		select {
		case res, ok := <-b.tx.Responses():
			if !ok {
				return
			}
			if f.onResponse(b, res) {
				return
			}
		case <-b.tx.Done():
			f.mu.Lock()
			if !b.done {
				b.done = true
				f.endBranch(b, inbox.BranchUnreachable, 0)
			}
			f.mu.Unlock()
			f.poke()
			return
		}
	}
}

// onResponse handles one response of a branch; true when it was final.
func (f *fork) onResponse(b *branch, res *sip.Response) bool {
	code := res.StatusCode
	switch {
	case code < 200:
		f.mu.Lock()
		b.provisional = true
		pending := b.cancelWant != "" && !b.cancelSent
		f.mu.Unlock()
		if pending {
			f.sendCancel(b)
		}
		// One 180 tells the caller it rings; more (one per phone) add
		// nothing and confuse some carriers. Early media (a body) always goes.
		f.mu.Lock()
		send := code > 100 && f.state == stRinging && (len(res.Body()) > 0 || !f.ringingSent)
		if send && len(res.Body()) == 0 {
			f.ringingSent = true
		}
		f.mu.Unlock()
		if send {
			f.relay(res)
		}
		return false
	case code < 300:
		f.mu.Lock()
		first := f.state == stRinging
		b.done = true
		if tag := res.To().Params.GetOr("tag", ""); tag != "" {
			// Each 2xx makes a dialog; in-dialog requests find their branch by it.
			if f.dialogs == nil {
				f.dialogs = map[string]*branch{}
			}
			f.dialogs[tag] = b
		}
		if first {
			f.state = stAnswered
			now := f.s.Now()
			f.rec.AnsweredAt = &now
			f.rec.Disposition = inbox.Answered
			ua := ""
			if h := headerNamed(res, "User-Agent"); h != nil {
				ua = h.Value()
			} else if h := headerNamed(res, "Server"); h != nil {
				ua = h.Value()
			}
			f.rec.AnsweredBy = &inbox.Answerer{User: b.user, Contact: b.binding.Contact, UserAgent: ua}
			f.endBranch(b, inbox.BranchAnswered, code)
		}
		f.mu.Unlock()
		if h := f.s.hooks.answered; first && h != nil {
			h(f)
		}
		// In-dialog requests (the ACK first) may follow at once.
		f.s.dialogs.add(f.req.CallID().Value(), f)
		// Every 2xx goes upstream (RFC 3261 §16.7), the first through the
		// transaction.
		f.relay(res)
		if first {
			f.markRelayed()
			f.cancelOthers(b)
			f.save()
		}
		f.poke()
		return true
	default:
		f.mu.Lock()
		b.done = true
		outcome := inbox.BranchNoAnswer
		switch {
		case b.cancelWant != "":
			outcome = b.cancelWant
		case code == 486 || code == 600:
			outcome = inbox.BranchBusy
		case code == 603 || code >= 600:
			outcome = inbox.BranchDeclined
		case code == 480 || code == 408:
			outcome = inbox.BranchNoAnswer
		default:
			outcome = inbox.BranchUnreachable
		}
		f.endBranch(b, outcome, code)
		if f.best == nil || better(code, f.best.StatusCode) {
			f.best = res
		}
		personal := code == 486 || code == 603 || code >= 600
		f.mu.Unlock()
		if personal {
			// A decline is personal: end that person's other devices.
			f.cancelPerson(b.user)
		}
		f.save()
		f.poke()
		return true
	}
}

// better ranks final failures (RFC 3261 §16.7 step 6, simplified): 6xx,
// then the lowest class.
func better(code, than int) bool {
	if code >= 600 {
		return than < 600
	}
	if than >= 600 {
		return false
	}
	return code/100 < than/100
}

// endBranch records a branch's end; f.mu held.
func (f *fork) endBranch(b *branch, outcome string, code int) {
	now := f.s.Now()
	br := &f.rec.Branches[b.idx]
	br.EndedAt, br.Outcome, br.Status = &now, outcome, code
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

// cancel cancels every live branch that which picks (under f.mu), to be
// recorded with outcome; the CANCELs go out as their branches allow.
func (f *fork) cancel(which func(*branch) bool, outcome string) {
	f.mu.Lock()
	var todo []*branch
	for _, b := range f.branches {
		if !b.done && b.cancelWant == "" && which(b) {
			b.cancelWant = outcome
			todo = append(todo, b)
		}
	}
	f.mu.Unlock()
	for _, b := range todo {
		f.sendCancel(b)
	}
}

// cancelOthers cancels every live branch but the winner.
func (f *fork) cancelOthers(winner *branch) {
	f.cancel(func(b *branch) bool { return b != winner }, inbox.BranchCancelledElsewhere)
}

// cancelPerson cancels a person's other devices after their decline.
func (f *fork) cancelPerson(user string) {
	f.cancel(func(b *branch) bool { return b.user == user }, inbox.BranchDeclined)
}

// cancelStep cancels the live branches of a step (-1: all) with outcome.
func (f *fork) cancelStep(step int, outcome string) {
	f.cancel(func(b *branch) bool { return step < 0 || f.rec.Branches[b.idx].Step == step }, outcome)
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

// sendCancel sends CANCEL for b once it has had a provisional response
// (RFC 3261 §9.1); until then the wish is remembered and onResponse sends
// it when the 1xx arrives.
func (f *fork) sendCancel(b *branch) {
	f.mu.Lock()
	if !b.provisional || b.cancelSent || b.done {
		f.mu.Unlock()
		return
	}
	b.cancelSent = true
	reason := ""
	if b.cancelWant == inbox.BranchCancelledElsewhere {
		reason = reasonElsewhere
	}
	f.mu.Unlock()
	go f.s.sendFinal(cancelFor(b.req, reason))
}

// cancelFor builds the CANCEL of an INVITE as it was sent (RFC 3261 §9.1):
// same Request-URI, top Via, Route, From, To, Call-ID, CSeq number.
func cancelFor(inv *sip.Request, reason string) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	if via := inv.Via(); via != nil {
		c.AppendHeader(via.Clone())
	}
	for _, h := range inv.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(h))
	}
	c.AppendHeader(sip.HeaderClone(inv.From()))
	c.AppendHeader(sip.HeaderClone(inv.To()))
	c.AppendHeader(sip.HeaderClone(inv.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	if reason != "" {
		c.AppendHeader(sip.NewHeader("Reason", reason))
	}
	c.AppendHeader(sip.NewHeader("Content-Length", "0"))
	c.SetTransport(inv.Transport())
	c.SetDestination(inv.Destination())
	c.Laddr = inv.Laddr
	return c
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
	if !answered && !gone && f.plan.Then == acl.ThenVoicemail && !f.outbound && !f.private {
		f.s.voicemail(f)
		return
	}
	if !answered && !gone {
		// No answer in any step, and no voicemail (hangup flow, or none
		// configured): 480. An outbound call relays what the far end said
		// (busy, not found, ...).
		code, reason := 480, "Temporarily Unavailable"
		if best != nil && f.outbound {
			code, reason = best.StatusCode, best.Reason
		}
		f.s.respond(f.tx, f.req, code, reason)
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

// relayStateless forwards a (retransmitted or raced) 2xx whose transaction
// is gone: drop our Via and send it to the next one (RFC 3261 §16.7).
func (s *Server) relayStateless(res *sip.Response) {
	via := res.Via()
	if via == nil || !strings.HasPrefix(via.Params.GetOr("branch", ""), branchPrefix) {
		return
	}
	up := res.Clone()
	up.RemoveHeader("Via")
	next := up.Via()
	if next == nil {
		return
	}
	host, port := next.Host, next.Port
	if r, ok := next.Params.Get("received"); ok && r != "" {
		host = r
	}
	if rp, ok := next.Params.Get("rport"); ok && rp != "" {
		fmt.Sscan(rp, &port)
	}
	if port == 0 {
		port = 5060
	}
	up.SetDestination(fmt.Sprintf("%s:%d", host, port))
	up.SetTransport(next.Transport)
	if err := s.ua.TransportLayer().WriteMsg(up); err != nil {
		s.Log.Debug("relaying 2xx", "call_id", res.CallID().Value(), "error", err)
	}
}

func cloneFrom(h *sip.FromHeader) *sip.FromHeader { return sip.HeaderClone(h).(*sip.FromHeader) }

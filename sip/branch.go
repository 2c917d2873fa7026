package sip

// A branch is one phone a fork rings: its INVITE's responses, its end in the
// record, and its CANCEL.

import (
	"fmt"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

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
	switch code := res.StatusCode; {
	case code < 200:
		f.onProvisional(b, res)
		return false
	case code < 300:
		f.onAnswer(b, res)
	default:
		f.onFailure(b, res)
	}
	return true
}

// onProvisional: a 1xx. The branch may now be cancelled (RFC 3261 §9.1).
// Every provisional goes upstream (§16.7 step 5) but repeated plain 180s:
// one tells the caller it rings, more (one per phone) add nothing and
// confuse some carriers. A reliable one (RFC 3262: the caller must PRACK
// it) and early media (a body) always go up.
func (f *fork) onProvisional(b *branch, res *sip.Response) {
	code := res.StatusCode
	f.mu.Lock()
	b.provisional = true
	pending := b.cancelWant != "" && !b.cancelSent
	f.mu.Unlock()
	if pending {
		f.sendCancel(b)
	}
	f.mu.Lock()
	plain := len(res.Body()) == 0 && !reliable(res)
	send := code > 100 && f.state == stRinging && (!plain || !f.ringingSent)
	if send && plain {
		f.ringingSent = true
	}
	f.mu.Unlock()
	if send {
		f.relay(res)
	}
}

// onAnswer: a 2xx. The first wins the call: recorded, relayed through the
// transaction, the other branches cancelled. Every 2xx goes upstream (RFC
// 3261 §16.7) and makes a dialog in-dialog requests find their branch by.
func (f *fork) onAnswer(b *branch, res *sip.Response) {
	code := res.StatusCode
	f.mu.Lock()
	first := f.state == stRinging
	b.done = true
	if tag := res.To().Params.GetOr("tag", ""); tag != "" {
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
	f.relay(res)
	if first {
		f.markRelayed()
		f.cancelOthers(b)
		f.save()
	}
	f.poke()
}

// onFailure: a final failure ends the branch, recorded by what it says
// (or by why we cancelled it); the best failure is kept for upstream. A
// decline is personal: that person's other phones stop ringing.
func (f *fork) onFailure(b *branch, res *sip.Response) {
	code := res.StatusCode
	f.mu.Lock()
	b.done = true
	outcome := inbox.BranchNoAnswer
	switch {
	case b.cancelWant != "":
		outcome = b.cancelWant
	case code < 400:
		outcome = inbox.BranchRedirected
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
	// A branch we cancelled answers 487 because we asked: not a word of
	// the callee's, so never the call's answer (RFC 3261 §16.8: a step or
	// Timer C running out counts as no answer, 480 upstream).
	if b.cancelWant == "" && (f.best == nil || better(code, f.best.StatusCode)) {
		f.best = res
	}
	// A 6xx ends the call for everyone (RFC 3261 §16.7 step 6) unless the
	// number takes a decline as personal; a 486 is always personal.
	everywhere := code >= 600 && !f.plan.DeclinePersonal && f.state == stRinging
	if everywhere {
		f.state = stDeclined
	}
	personal := !everywhere && (code == 486 || code >= 600)
	f.mu.Unlock()
	switch {
	case everywhere:
		f.cancel(func(*branch) bool { return true }, inbox.BranchDeclinedElsewhere)
	case personal:
		f.cancelPerson(b.user)
	}
	f.save()
	f.poke()
}

// better ranks final failures as RFC 3261 §16.7 step 6 picks the one that
// goes upstream: a 6xx, else the lowest class (a 3xx before a 4xx), and
// in 4xx a busy phone (486) before the rest, no answer (480, 408) last.
func better(code, than int) bool { return failureRank(code) < failureRank(than) }

func failureRank(code int) int {
	switch {
	case code >= 600:
		return 0
	case code == 486:
		return 40
	case code == 480 || code == 408:
		return 49
	}
	return code/100*10 + 5
}

// endBranch records a branch's end; f.mu held.
func (f *fork) endBranch(b *branch, outcome string, code int) {
	now := f.s.Now()
	br := &f.rec.Branches[b.idx]
	br.EndedAt, br.Outcome, br.Status = &now, outcome, code
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
	switch {
	case b.cancelWant == inbox.BranchCancelledElsewhere:
		reason = reasonElsewhere
	case b.cancelWant == inbox.BranchDeclinedElsewhere && f.best != nil:
		// RFC 3326: why, as the phone that declined said it.
		reason = fmt.Sprintf("SIP;cause=%d;text=%q", f.best.StatusCode, f.best.Reason)
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

// reliable reports a reliable provisional response (RFC 3262: Require:
// 100rel and an RSeq).
func reliable(res *sip.Response) bool {
	if headerNamed(res, "RSeq") == nil {
		return false
	}
	for _, h := range headersNamed(res, "Require") {
		for _, tag := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(tag), "100rel") {
				return true
			}
		}
	}
	return false
}

package sip

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/inbox"
)

// dialogs remembers the answered calls the proxy record-routed, by
// Call-ID: where each side is, and the history record to close on BYE.
type dialogs struct {
	mu sync.Mutex
	m  map[string]dialogEntry
}

type dialogEntry struct {
	f     *fork
	added time.Time
}

// maxDialogAge forgets dialogs whose BYE never came (a crashed phone).
const maxDialogAge = 12 * time.Hour

func newDialogs() *dialogs { return &dialogs{m: map[string]dialogEntry{}} }

func (d *dialogs) add(callID string, f *fork) {
	d.mu.Lock()
	d.m[callID] = dialogEntry{f: f, added: time.Now()}
	d.mu.Unlock()
}

func (d *dialogs) get(callID string) *fork {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[callID].f
}

// prune forgets dialogs older than maxDialogAge.
func (d *dialogs) prune(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, e := range d.m {
		if now.Sub(e.added) > maxDialogAge {
			delete(d.m, id)
		}
	}
}

func (d *dialogs) remove(callID string) {
	d.mu.Lock()
	delete(d.m, callID)
	d.mu.Unlock()
}

// inDialog forwards a request inside a dialog the proxy record-routed
// (loose routing, RFC 3261 §16.4 and §16.12): our Route is popped, and the
// request goes to the side it is for, at the flow that side's phone
// registered over (behind NAT), else by the next Route or its
// Request-URI. Which side, which flow and whose identity: our Route's
// signed token says (rr.go), so this needs no memory of the call and works
// after a restart; what memory there is (the call's fork, until its BYE or
// 12 h) only orders a BYE after its ACK and closes the record at once.
// Requests for dialogs we cannot route get 481; ACKs are dropped.
func (s *Server) inDialog(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort) {
	if vc := s.vm.get(req.CallID().Value()); vc != nil && req.To().Params.GetOr("tag", "") == vc.localTag {
		s.vmInDialog(vc, req, tx)
		return
	}
	fail := func(code int, reason string) {
		if req.Method != sip.ACK {
			s.respond(tx, req, code, reason)
		}
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		fail(483, "Too Many Hops")
		return
	}
	tok, signed := s.ourRoute(req)
	f, winner, towardsCallee := s.dialogOf(req)
	if signed {
		towardsCallee = req.From().Params.GetOr("tag", "") == tok.Tag
	} else if winner == nil {
		fail(481, "Call/Transaction Does Not Exist")
		return
	}
	r := req.Clone()
	for range 2 { // ours, twice where we record-routed twice (rr.go)
		if rt := r.Route(); rt != nil && s.isUs(rt.Address) {
			r.RemoveHeader("Route")
		}
	}
	mf := sip.MaxForwardsHeader(69)
	if h := req.MaxForwards(); h != nil {
		mf = sip.MaxForwardsHeader(h.Val() - 1)
	}
	r.RemoveHeader("Max-Forwards")
	r.AppendHeader(&mf)
	var transport, dest string
	if signed {
		tok.restoreIdentity(r, towardsCallee)
		flow := tok.Callee
		if !towardsCallee {
			flow = tok.Caller
		}
		var ok bool
		if transport, dest, ok = nextHop(r, flow); !ok {
			fail(404, "Not Found")
			return
		}
	} else {
		transport, dest = f.legacyHop(r, winner, towardsCallee)
	}
	host, port := s.advertisedTo(dest, req)
	s.viaTo(r, host, port, transport, dest)
	if req.Method == sip.ACK {
		if err := s.client.WriteRequest(r, keepAsBuilt); err != nil {
			s.Log.Debug("forwarding ACK", "call_id", req.CallID().Value(), "error", err)
		}
		if winner != nil {
			winner.ackOnce.Do(func() { close(winner.acked) })
		}
		return
	}
	if towardsCallee && winner != nil {
		// Each request runs in its own goroutine: a BYE sent right after
		// the ACK must not overtake it on the way to the phone. Wait for
		// the ACK a little (it may have been lost; the BYE goes anyway).
		select {
		case <-winner.acked:
		case <-time.After(s.AckWait):
		}
	}
	ended := func() {}
	switch {
	case req.Method != sip.BYE:
	case winner != nil:
		ended = func() { f.ended(winner) }
	case signed && tok.Rec != "":
		ended = func() { s.closeRecord(tok.Rec) }
	}
	s.forwardInDialog(req, tx, r, ended)
}

// dialogOf finds the call and branch a request belongs to in memory (nil
// after a restart, or once the call's BYE came), and whether it goes
// towards the phone that answered: the phone's tag is the To tag from the
// caller's side and the From tag from the phone's.
func (s *Server) dialogOf(req *sip.Request) (f *fork, winner *branch, towardsCallee bool) {
	f = s.dialogs.get(req.CallID().Value())
	if f == nil {
		return nil, nil, true
	}
	if winner = f.dialogBranch(req.To().Params.GetOr("tag", "")); winner != nil {
		return f, winner, true
	}
	return f, f.dialogBranch(req.From().Params.GetOr("tag", "")), false
}

// legacyHop routes a request of a dialog whose Route carries no token (set
// up before tokens existed) from memory: the phone's flow, or where the
// caller's INVITE came from; it keeps each side's view of the caller.
func (f *fork) legacyHop(r *sip.Request, winner *branch, towardsCallee bool) (transport, dest string) {
	if f.from != nil {
		if towardsCallee && r.From().Params.GetOr("tag", "") == f.req.From().Params.GetOr("tag", "") {
			r.ReplaceHeader(cloneFrom(f.from))
		} else if !towardsCallee && r.To().Params.GetOr("tag", "") == f.req.From().Params.GetOr("tag", "") {
			r.ReplaceHeader(&sip.ToHeader{DisplayName: f.req.From().DisplayName, Address: f.req.From().Address, Params: r.To().Params.Clone()})
		}
	}
	if towardsCallee {
		return strings.ToUpper(winner.binding.Transport), winner.binding.Source
	}
	return strings.ToUpper(f.req.Transport()), f.src.String()
}

// restoreIdentity gives r the caller's identity as the side it goes to
// knows it: towards the callee the From we put in the INVITE, towards the
// caller its own From (in To).
func (t routeToken) restoreIdentity(r *sip.Request, towardsCallee bool) {
	if t.From == "" {
		return
	}
	var u sip.Uri
	switch {
	case towardsCallee && r.From().Params.GetOr("tag", "") == t.Tag:
		if sip.ParseUri(t.From, &u) == nil {
			r.ReplaceHeader(&sip.FromHeader{DisplayName: r.From().DisplayName, Address: u, Params: r.From().Params.Clone()})
		}
	case !towardsCallee && r.To().Params.GetOr("tag", "") == t.Tag:
		if sip.ParseUri(t.Orig, &u) == nil {
			r.ReplaceHeader(&sip.ToHeader{DisplayName: r.To().DisplayName, Address: u, Params: r.To().Params.Clone()})
		}
	}
}

// closeRecord ends a call's history record after its BYE when no memory
// of the call is left (a restart, or a call over 12 h).
func (s *Server) closeRecord(id string) {
	c, err := s.calls.Call(id)
	if err != nil || c.EndedAt != nil {
		return
	}
	now := s.Now()
	c.EndedAt = &now
	if c.AnsweredAt != nil {
		c.DurationS = int(now.Sub(*c.AnsweredAt).Round(time.Second) / time.Second)
	}
	if err := s.calls.PutCall(&c); err != nil {
		s.Log.Error("closing a call's history", "call_id", c.CallID, "error", err)
	}
}

// forwardInDialog sends r, the in-dialog request req as it goes on, in a
// client transaction and relays its responses through tx; ended runs
// after the final response (or none).
func (s *Server) forwardInDialog(req *sip.Request, tx sip.ServerTransaction, r *sip.Request, ended func()) {
	// The request's own timers (Timer B/F, 32 s) bound the wait below.
	ctx, cancel := context.WithTimeout(context.Background(), s.ConnectTimeout)
	out, err := s.client.TransactionRequest(ctx, r, keepAsBuilt)
	cancel()
	if err != nil {
		s.respond(tx, req, 503, "Service Unavailable")
		return
	}
	defer out.Terminate()
	for {
		select {
		case res := <-out.Responses():
			if res == nil {
				return
			}
			up := res.Clone()
			up.RemoveHeader("Via")
			up.ReplaceHeader(cloneFrom(req.From()))
			up.ReplaceHeader(sip.HeaderClone(req.To()))
			up.SetDestination(req.Source())
			tx.Respond(up)
			if res.StatusCode >= 200 {
				ended()
				return
			}
		case <-out.Done():
			s.respond(tx, req, 408, "Request Timeout")
			ended()
			return
		}
	}
}

// dialogBranch is the branch whose 2xx carried the tag.
func (f *fork) dialogBranch(tag string) *branch {
	if tag == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dialogs[tag]
}

// ended closes a dialog of the call after its BYE; the record ends with
// the answering branch's dialog.
func (f *fork) ended(b *branch) {
	f.mu.Lock()
	for tag, d := range f.dialogs {
		if d == b {
			delete(f.dialogs, tag)
		}
	}
	winner := f.rec.Branches[b.idx].Outcome == inbox.BranchAnswered
	left := len(f.dialogs)
	if !winner {
		f.mu.Unlock()
		if left == 0 {
			f.s.dialogs.remove(f.req.CallID().Value())
		}
		return
	}
	if f.rec.EndedAt != nil {
		f.mu.Unlock()
		if left == 0 {
			f.s.dialogs.remove(f.req.CallID().Value())
		}
		return
	}
	now := f.s.Now()
	f.rec.EndedAt = &now
	if f.rec.AnsweredAt != nil {
		f.rec.DurationS = int(now.Sub(*f.rec.AnsweredAt).Round(time.Second) / time.Second)
	}
	f.mu.Unlock()
	f.save()
	if left == 0 {
		f.s.dialogs.remove(f.req.CallID().Value())
	}
}

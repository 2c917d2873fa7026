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
// request goes to the other side at the address it really uses (the
// device's registration source, or the caller's source), so devices behind
// NAT are reached. Requests for unknown dialogs get 481; ACKs are dropped.
func (s *Server) inDialog(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort) {
	if vc := s.vm.get(req.CallID().Value()); vc != nil && req.To().Params.GetOr("tag", "") == vc.localTag {
		s.vmInDialog(vc, req, tx)
		return
	}
	f := s.dialogs.get(req.CallID().Value())
	if f == nil {
		if req.Method != sip.ACK {
			s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		}
		return
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		if req.Method != sip.ACK {
			s.respond(tx, req, 483, "Too Many Hops")
		}
		return
	}
	// Which dialog of the call (a raced second 2xx makes another), and
	// which way: the device's tag is the To tag from the caller's side and
	// the From tag from the device's.
	winner, towardsDevice := f.dialogBranch(req.To().Params.GetOr("tag", "")), true
	if winner == nil {
		winner, towardsDevice = f.dialogBranch(req.From().Params.GetOr("tag", "")), false
	}
	if winner == nil {
		if req.Method != sip.ACK {
			s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		}
		return
	}
	r := req.Clone()
	if rt := r.Route(); rt != nil && s.isUs(rt.Address) {
		r.RemoveHeader("Route")
	}
	mf := sip.MaxForwardsHeader(69)
	if h := req.MaxForwards(); h != nil {
		mf = sip.MaxForwardsHeader(h.Val() - 1)
	}
	r.RemoveHeader("Max-Forwards")
	r.AppendHeader(&mf)
	dest, transport := winner.binding.Source, strings.ToUpper(winner.binding.Transport)
	if !towardsDevice {
		dest, transport = f.src.String(), strings.ToUpper(f.req.Transport())
	}
	if f.from != nil {
		// Keep each side's view of the caller's identity (see fork.from).
		if towardsDevice && r.From().Params.GetOr("tag", "") == f.req.From().Params.GetOr("tag", "") {
			r.ReplaceHeader(cloneFrom(f.from))
		} else if !towardsDevice && r.To().Params.GetOr("tag", "") == f.req.From().Params.GetOr("tag", "") {
			to := &sip.ToHeader{DisplayName: f.req.From().DisplayName, Address: f.req.From().Address, Params: r.To().Params.Clone()}
			r.ReplaceHeader(to)
		}
	}
	host, port := s.advertised(f.req)
	s.viaTo(r, host, port, transport, dest)
	if req.Method == sip.ACK {
		if err := s.client.WriteRequest(r, keepAsBuilt); err != nil {
			s.Log.Debug("forwarding ACK", "call_id", req.CallID().Value(), "error", err)
		}
		winner.ackOnce.Do(func() { close(winner.acked) })
		return
	}
	if towardsDevice {
		// Each request runs in its own goroutine: a BYE sent right after
		// the ACK must not overtake it on the way to the phone. Wait for
		// the ACK a little (it may have been lost; the BYE goes anyway).
		select {
		case <-winner.acked:
		case <-time.After(s.AckWait):
		}
	}
	s.forwardInDialog(req, tx, r, f, winner)
}

// forwardInDialog sends r, the in-dialog request req as it goes on, in a
// client transaction and relays its responses through tx; a BYE's final
// response (or none) ends the branch's call.
func (s *Server) forwardInDialog(req *sip.Request, tx sip.ServerTransaction, r *sip.Request, f *fork, winner *branch) {
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
				if req.Method == sip.BYE {
					f.ended(winner)
				}
				return
			}
		case <-out.Done():
			s.respond(tx, req, 408, "Request Timeout")
			if req.Method == sip.BYE {
				f.ended(winner)
			}
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

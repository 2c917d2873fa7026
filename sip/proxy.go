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
	Call(id string) (inbox.Call, error)
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
	lookup := s.loc.Lookup
	if user != "" && !s.RingCallersPhone {
		// A member calling the number from their own phone: that phone
		// does not ring (their other phones do).
		lookup = func(u string) []location.Binding {
			bs := s.loc.Lookup(u)
			if u != user {
				return bs
			}
			var rest []location.Binding
			for _, b := range bs {
				if b.Source != src.String() {
					rest = append(rest, b)
				}
			}
			return rest
		}
	}
	plan, ok := acl.WhoRings(snap, number, lookup)
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
		f.from, f.pai, f.callerFlow = s.userFrom(req, user), s.userPAI(user), true
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
	f.private, f.from, f.pai, f.callerFlow = true, s.userFrom(req, caller), s.userPAI(caller), true
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
	f.from, f.pai, f.outbound, f.callerFlow = from, "<sip:"+number+"@"+host+">", true, true
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

// relayStateless forwards a (retransmitted or raced) 2xx whose transaction
// is gone: drop our Via and send it to the next one (RFC 3261 §16.7).
func (s *Server) relayStateless(res *sip.Response) {
	via := res.Via()
	if via == nil || !strings.HasPrefix(via.Params.GetOr("branch", ""), branchPrefix) {
		return
	}
	if cseq := res.CSeq(); cseq == nil || cseq.MethodName != sip.INVITE || res.StatusCode < 200 || res.StatusCode >= 300 {
		// Only a 2xx to an INVITE goes on without its transaction (RFC
		// 3261 §16.7, RFC 6026): a late 180 or a phone's resent 487 would
		// tell a caller in an answered call something false.
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

package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/location"
)

// invite routes an INVITE outside a dialog by its Request-URI: to a
// shared number it forks; from a user, to a colleague it rings their
// phones and to an outside number it goes out through the number's trunk.
// r.user is the authenticated user, or "" for a trunk.
func (s *Server) invite(r incoming) {
	switch t := s.targetOf(r.req.Recipient); {
	case t.number != "":
		s.inviteNumber(r.req, r.tx, r.src, r.user, t.number)
	case r.user == "":
		s.respond(r.tx, r.req, 404, "Not Found") // a trunk reaches our numbers only
	case t.user != "":
		s.inviteUser(r.req, r.tx, r.src, r.user, t.user)
	case t.dest != "":
		s.inviteOut(r.req, r.tx, r.src, r.user, t.dest)
	default:
		s.respond(r.tx, r.req, 404, "Not Found")
	}
}

// target is where a Request-URI outside a dialog leads: one of our shared
// numbers, one of our users, or an outside number (E.164); all empty when
// none of them.
type target struct{ number, user, dest string }

func (s *Server) targetOf(u sip.Uri) target {
	if number, ok := s.sharedNumber(u); ok {
		return target{number: number}
	}
	if _, ok := s.dir.Snapshot().User(u.User); ok {
		return target{user: u.User}
	}
	if e, err := acl.NormalizeE164(u.User); err == nil {
		return target{dest: e}
	}
	return target{}
}

// sharedNumber finds the shared number a Request-URI names: its user part
// (sip: or tel:) with or without +, with visual separators.
func (s *Server) sharedNumber(u sip.Uri) (string, bool) {
	user := u.User
	if strings.EqualFold(u.Scheme, "tel") {
		user = telNumber(u)
	}
	if user == "" {
		return "", false
	}
	e, err := acl.NormalizeE164(user)
	if err != nil {
		return "", false
	}
	if _, ok := s.dir.Snapshot().Number(e); !ok {
		return "", false
	}
	return e, true
}

// telNumber is the number of a tel: URI (RFC 3966), its parameters cut
// off (sipgo keeps a tel: URI whole, unparsed).
func telNumber(u sip.Uri) string {
	n := strings.TrimPrefix(u.String(), u.Scheme+":")
	if i := strings.IndexByte(n, ';'); i >= 0 {
		n = n[:i]
	}
	return n
}

// branchRequest builds the INVITE for one device from the caller's: the
// device's Contact as Request-URI, sent to where it registered from, our
// Via and Record-Route on top, Max-Forwards decremented in a fresh header.
func (s *Server) branchRequest(orig *sip.Request, b location.Binding) (*sip.Request, error) {
	var ruri sip.Uri
	if err := sip.ParseUri(b.Contact, &ruri); err != nil {
		return nil, fmt.Errorf("contact %q: %w", b.Contact, err)
	}
	r := orig.Clone()
	r.Recipient = ruri
	mf := sip.MaxForwardsHeader(69)
	if h := orig.MaxForwards(); h != nil && h.Val() > 0 {
		mf = sip.MaxForwardsHeader(h.Val() - 1)
	}
	r.RemoveHeader("Max-Forwards")
	r.AppendHeader(&mf)
	transport := strings.ToUpper(b.Transport)
	host, port := s.advertised(orig)
	rr := &sip.RecordRouteHeader{Address: sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sip.NewParams()}}
	rr.Address.UriParams.Add("lr", "")
	r.PrependHeader(rr)
	s.viaTo(r, host, port, transport, b.Source)
	return r, nil
}

// advertised is the host:port we put in Via and Record-Route: Advertise,
// else the listen address, else (listening on 0.0.0.0) the address the
// request was sent to.
func (s *Server) advertised(req *sip.Request) (string, int) {
	if s.Advertise != "" {
		h, p, err := net.SplitHostPort(s.Advertise)
		if err == nil {
			n, _ := strconv.Atoi(p)
			return h, n
		}
		return s.Advertise, 5060
	}
	a := s.Addrs()[0]
	if !a.Addr().IsUnspecified() {
		return a.Addr().String(), int(a.Port())
	}
	if ip, err := netip.ParseAddr(req.Recipient.Host); err == nil && !ip.IsUnspecified() {
		return ip.String(), int(a.Port())
	}
	return "127.0.0.1", int(a.Port())
}

// advertisedTo is advertised for a request leaving towards dest: the
// listen address of dest's address family when we listen on one, so an
// IPv6 phone sees our IPv6 address in Via and Record-Route (RFC 5118).
func (s *Server) advertisedTo(dest string, req *sip.Request) (string, int) {
	if s.Advertise == "" {
		if la, ok := s.udpLocal(dest); ok && !la.Addr().IsUnspecified() {
			return la.Addr().String(), int(la.Port())
		}
	}
	return s.advertised(req)
}

// udpLocal picks the UDP listener to send to dst from (the same family).
func (s *Server) udpLocal(dst string) (netip.AddrPort, bool) {
	d, err := netip.ParseAddrPort(dst)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for _, a := range s.Addrs() {
		if a.Addr().Is4() == d.Addr().Unmap().Is4() {
			return a, true
		}
	}
	return netip.AddrPort{}, false
}

// isUs reports whether a URI names this server (a Route we put there).
func (s *Server) isUs(u sip.Uri) bool {
	for _, a := range s.Addrs() {
		port := u.Port
		if port == 0 {
			port = 5060
		}
		if port != int(a.Port()) {
			continue
		}
		host := strings.TrimSuffix(strings.TrimPrefix(u.Host, "["), "]") // an IPv6 reference
		if host == a.Addr().String() || a.Addr().IsUnspecified() {
			return true
		}
		if h, _ := s.advertisedHost(); h == u.Host || h == host {
			return true
		}
	}
	return false
}

func (s *Server) advertisedHost() (string, bool) {
	if s.Advertise == "" {
		return "", false
	}
	h, _, err := net.SplitHostPort(s.Advertise)
	if err != nil {
		return s.Advertise, true
	}
	return h, true
}

// looped reports a request that already passed through us: one of its
// Vias is ours (our branch prefix at our address). We never route a
// request back to ourselves, so any such Via means a loop.
func (s *Server) looped(req *sip.Request) bool {
	for _, h := range req.GetHeaders("Via") {
		v, ok := h.(*sip.ViaHeader)
		if !ok {
			continue
		}
		if strings.HasPrefix(v.Params.GetOr("branch", ""), branchPrefix) && s.isUs(sip.Uri{Host: v.Host, Port: v.Port}) {
			return true
		}
	}
	return false
}

// viaTo puts our Via (a fresh branch, rport) on top of r and addresses it
// to dest over transport; over UDP it leaves from our listener, so a phone
// behind NAT sees the port it registered with.
func (s *Server) viaTo(r *sip.Request, host string, port int, transport, dest string) {
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: transport, Host: host, Port: port, Params: sip.NewParams()}
	via.Params.Add("branch", newBranchID())
	via.Params.Add("rport", "")
	r.PrependHeader(via)
	r.SetTransport(transport)
	r.SetDestination(dest)
	if transport == "UDP" {
		if la, ok := s.udpLocal(dest); ok {
			r.Laddr = sip.Addr{IP: la.Addr().AsSlice(), Port: int(la.Port())}
		}
	}
}

// sendFinal sends r, built whole by us, in a client transaction and waits
// for its final response (nil when none came), bounded by the
// transaction's own timers (Timer F, 32 s).
func (s *Server) sendFinal(r *sip.Request) *sip.Response {
	return s.requestWithin(r, sip.Timer_F)
}

// requestWithin sends r, built whole by us, in a client transaction and
// returns its final response, or nil when none came within d or the
// server stops; the transaction then ends, so its retransmissions stop.
// One that got its final response stays until Timer K to absorb the
// response's retransmissions.
func (s *Server) requestWithin(r *sip.Request, d time.Duration) *sip.Response {
	ctx, cancel := context.WithTimeout(context.Background(), s.ConnectTimeout)
	tx, err := s.client.TransactionRequest(ctx, r, keepAsBuilt)
	cancel()
	if err != nil {
		s.Log.Debug("sending request", "method", string(r.Method), "call_id", r.CallID().Value(), "error", err)
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case res := <-tx.Responses():
			if res == nil {
				return nil
			}
			if res.StatusCode >= 200 {
				return res
			}
		case <-tx.Done():
			return nil
		case <-t.C:
			tx.Terminate()
			return nil
		case <-s.stopping:
			// Shutting down: nobody waits for the answer any longer.
			tx.Terminate()
			return nil
		}
	}
}

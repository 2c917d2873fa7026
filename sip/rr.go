package sip

// What a call's in-dialog requests need to find their way lives in our
// Record-Route, not in memory (RFC 3261 §16.12, loose routing; the flow
// tokens of RFC 5626, Kamailio's add_rr_param): so a BYE after a restart
// of partyline, or after 12 hours, still reaches the other side, and the
// call's history still closes. The token is a parameter of our Route
// entry, signed with the RouteKey so nobody can send us a Route that
// points our relay at an address of their choosing.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// rrParam is the Record-Route URI parameter that carries the token.
const rrParam = "pl"

// routeToken is a dialog's routing, as each side's requests need it.
type routeToken struct {
	// Caller and Callee are the flows (TRANSPORT/IP:PORT) to reach each
	// side at, for a phone that registered from behind NAT; "" for a side
	// reached by its Contact (a carrier, a trunk): by the Request-URI.
	Caller string `json:"c,omitempty"`
	Callee string `json:"d,omitempty"`
	// Tag is the caller's From tag: it tells which way a request goes.
	Tag string `json:"t"`
	// From and Orig are the caller's From as the callee knows it and as
	// the caller sent it, when we rewrote it (fork.from); else "".
	From string `json:"f,omitempty"`
	Orig string `json:"o,omitempty"`
	// Rec is the call's history record ("" for calls between users).
	Rec string `json:"r,omitempty"`
}

// flowOf renders a flow for a token.
func flowOf(transport, addr string) string {
	return strings.ToUpper(transport) + "/" + addr
}

// splitFlow is a token's flow as transport and address.
func splitFlow(flow string) (transport, addr string) {
	transport, addr, _ = strings.Cut(flow, "/")
	return transport, addr
}

// encode signs t: base64url(JSON) "." base64url(HMAC-SHA256 first 16 bytes).
func (t routeToken) encode(key []byte) string {
	js, _ := json.Marshal(t)
	body := base64.RawURLEncoding.EncodeToString(js)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// decodeRouteToken checks and reads a token; false when it is not one we
// signed.
func decodeRouteToken(s string, key []byte) (routeToken, bool) {
	body, sig, ok := strings.Cut(s, ".")
	if !ok || len(s) > 2048 {
		return routeToken{}, false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(body))
	want := base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return routeToken{}, false
	}
	js, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return routeToken{}, false
	}
	var t routeToken
	if json.Unmarshal(js, &t) != nil || t.Tag == "" {
		return routeToken{}, false
	}
	return t, true
}

// recordRoutes are our Record-Route entries for a branch of f leaving from
// host:port: one, or two when the branch leaves in another address family
// than the caller's request came in (RFC 5658 double record-routing: the
// callee's side on top, the caller's below), each with the token.
func (s *Server) recordRoutes(f *fork, calleeFlow, host string, port int) []sip.Header {
	token := s.routeTokenFor(f, calleeFlow)
	out := []sip.Header{ourRecordRoute(host, port, token)}
	if ch, cp := s.advertisedTo(f.src.String(), f.req); ch != host || cp != port {
		out = append(out, ourRecordRoute(ch, cp, token))
	}
	return out
}

func ourRecordRoute(host string, port int, token string) *sip.RecordRouteHeader {
	rr := &sip.RecordRouteHeader{Address: sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sip.NewParams()}}
	rr.Address.UriParams.Add("lr", "")
	rr.Address.UriParams.Add(rrParam, token)
	return rr
}

// routeTokenFor is the signed token of a branch of f to a phone reached at
// calleeFlow ("" for a trunk).
func (s *Server) routeTokenFor(f *fork, calleeFlow string) string {
	t := routeToken{Callee: calleeFlow, Tag: f.req.From().Params.GetOr("tag", ""), Rec: f.rec.ID}
	if f.private {
		t.Rec = ""
	}
	if f.callerFlow {
		t.Caller = flowOf(f.req.Transport(), f.src.String())
	}
	if f.from != nil && !sameURIString(f.from.Address, f.req.From().Address) {
		t.From, t.Orig = f.from.Address.String(), f.req.From().Address.String()
	}
	return t.encode(s.RouteKey)
}

func sameURIString(a, b sip.Uri) bool { return a.String() == b.String() }

// ourRoute returns the token of the request's top Route when that Route is
// ours and signed by us.
func (s *Server) ourRoute(req *sip.Request) (routeToken, bool) {
	rt := req.Route()
	if rt == nil || !s.isUs(rt.Address) {
		return routeToken{}, false
	}
	v, ok := rt.Address.UriParams.Get(rrParam)
	if !ok {
		return routeToken{}, false
	}
	return decodeRouteToken(v, s.RouteKey)
}

// nextHop is where an in-dialog request goes on once our Route is popped
// from r: the flow of the side it goes to, else the next Route, else the
// Request-URI (RFC 3261 §16.12).
func nextHop(r *sip.Request, flow string) (transport, dest string, ok bool) {
	if flow != "" {
		transport, dest = splitFlow(flow)
		return transport, dest, true
	}
	u := r.Recipient
	if rt := r.Route(); rt != nil {
		u = rt.Address
	}
	transport = "UDP"
	if tp, ok := u.UriParams.Get("transport"); ok && tp != "" {
		transport = strings.ToUpper(tp)
	}
	port := u.Port
	if port == 0 {
		port = 5060
	}
	ap, err := resolveHostPort(hostPort(u.Host, uint16(port)))
	if err != nil {
		return "", "", false
	}
	return transport, netip.AddrPortFrom(ap.Addr(), ap.Port()).String(), true
}

package sip

// The mux: every request sipgo hands us (admission passed it) goes to one
// handler by its method, as miekg/dns's ServeMux sends a query by its
// name. Requests inside a dialog of ours go to the dialog (the dialog is
// the credential); the others are authenticated first unless a trunk sent
// them, then routed. The handlers answer through the transaction.

import (
	"fmt"
	"net/netip"
	"runtime/debug"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// incoming is one admitted request on its way to a handler: the request,
// its transaction, where it came from and who sent it ("" for a trunk or
// a request that needs no user).
type incoming struct {
	req  *sip.Request
	tx   sip.ServerTransaction
	src  netip.AddrPort
	user string
}

// route is a mux entry: the handler and whether the request must come
// from a proven user or a trunk (proxy: Proxy-Authorization), or from a
// proven user through WWW-Authenticate (registrar), or from anyone.
type route struct {
	handle func(s *Server, r incoming)
	auth   authKind
}

type authKind int

const (
	authAnyone    authKind = iota // OPTIONS, CANCEL: nothing to prove
	authRegistrar                 // 401 and Authorization, user required
	authProxy                     // 407 and Proxy-Authorization, or a trunk
)

// routes is the mux: each method we handle outside a dialog. Anything
// else gets 501.
var routes = map[sip.RequestMethod]route{
	sip.OPTIONS:   {(*Server).options, authAnyone},
	sip.CANCEL:    {(*Server).unmatchedCancel, authAnyone},
	sip.REGISTER:  {(*Server).registerRoute, authRegistrar},
	sip.INVITE:    {(*Server).invite, authProxy},
	sip.MESSAGE:   {(*Server).messageRoute, authProxy},
	sip.SUBSCRIBE: {(*Server).subscribeRoute, authProxy},
}

// serve is stages 9–10 for every request sipgo hands us.
func (s *Server) serve(req *sip.Request, tx sip.ServerTransaction) {
	s.handling.Add(1)
	defer func() {
		s.handling.Add(-1)
		if p := recover(); p != nil {
			s.recovered(p, string(req.Method), req.CallID().Value())
			tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
		}
	}()
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return
	}
	// An ACK of a 2xx, or a request inside a dialog we record-routed or a
	// subscription of ours: the dialog is the credential.
	inDialog := req.Method == sip.ACK || (req.To().Params.Has("tag") && req.Method != sip.REGISTER && req.Method != sip.OPTIONS && req.Method != sip.CANCEL)
	if inDialog {
		if req.Method == sip.SUBSCRIBE && s.refreshSubscription(req, tx) {
			return
		}
		s.inDialog(req, tx, src)
		return
	}
	rt, ok := routes[req.Method]
	if !ok {
		rt = route{handle: (*Server).notImplemented, auth: authProxy}
	}
	r := incoming{req: req, tx: tx, src: src}
	switch rt.auth {
	case authRegistrar:
		if r.user, ok = s.authenticate(req, tx, src, false); !ok {
			return
		}
	case authProxy:
		if !s.trusted(src) {
			if r.user, ok = s.authenticate(req, tx, src, true); !ok {
				return
			}
		}
		if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
			s.respond(tx, req, 483, "Too Many Hops")
			return
		}
		if s.looped(req) {
			s.respond(tx, req, 482, "Loop Detected")
			return
		}
	}
	rt.handle(s, r)
}

// allow is what the server implements, for Allow headers.
const allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, UPDATE, INFO, MESSAGE"

// options answers what we implement and accept; 483 when it is addressed
// to a user, so a proxy would forward it and may not (RFC 3261 §16.3 step
// 3, RFC 4475 zeromf). One to the server itself is answered whatever its
// Max-Forwards.
func (s *Server) options(r incoming) {
	if mf := r.req.MaxForwards(); r.req.Recipient.User != "" && mf != nil && mf.Val() == 0 {
		s.respond(r.tx, r.req, 483, "Too Many Hops")
		return
	}
	res := sip.NewResponseFromRequest(r.req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", allow))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp, "+acceptTexts))
	r.tx.Respond(res)
}

// unmatchedCancel: a CANCEL that matched a transaction never gets here.
func (s *Server) unmatchedCancel(r incoming) {
	s.respond(r.tx, r.req, 481, "Call/Transaction Does Not Exist")
}

func (s *Server) notImplemented(r incoming) {
	s.respond(r.tx, r.req, 501, "Not Implemented")
}

func (s *Server) registerRoute(r incoming) { s.register(r.req, r.tx, r.src, r.user) }

func (s *Server) messageRoute(r incoming) { s.message(r.req, r.tx, r.user) }

// subscribeRoute: only users subscribe (to their message waiting).
func (s *Server) subscribeRoute(r incoming) {
	if r.user == "" {
		s.notImplemented(r)
		return
	}
	s.subscribe(r.req, r.tx, r.src, r.user)
}

func (s *Server) respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	if err := tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil)); err != nil {
		s.Log.Debug("respond failed", "call_id", req.CallID().Value(), "status", code, "error", err)
	}
}

func (s *Server) recovered(p any, method, callID string) {
	s.panics.Add(1)
	s.Log.Error("recovered panic", "method", method, "call_id", callID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
}

var _ sipgo.RequestHandler = (*Server)(nil).serve

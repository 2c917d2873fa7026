package sip

// The one admission pipeline. Every received message passes these stages in
// order; a stage that rejects answers with a fixed status (or silence) and
// the later stages never see the message:
//
//  1. size limit (MaxMessage, default 64 KiB)           → silence (UDP), 413 + close (TCP)
//  2. parse                                             → 400 when a reply can be addressed, else silence
//  3. required headers present and single               → 400 (no Via: silence)
//     (Via, From, To, Call-ID, CSeq, Max-Forwards; Content-Length at most once)
//  4. SIP/2.0 only                                      → 505
//  5. CSeq method equals the method; numbers in range   → 400
//  6. unknown Require / Proxy-Require option tags       → 420 with Unsupported
//  7. unknown Request-URI scheme                        → 416
//  8. ban (too many failed authentications)             → silence
//  9. authentication (trunk source, or digest)          → 401 / 407 challenge
// 10. routing                                           → registrar, OPTIONS, ...
//
// Stages 1–8 run on the raw bytes before sipgo sees them (admit, called by
// the socket wrappers in conn.go); 9–10 run in the request handler (serve).
// Responses are checked by stages 1–3 only and then go to sipgo's
// transaction layer, which drops the unsolicited ones.

import (
	"bytes"
	"fmt"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// verdict is what admission decided for one message.
type verdict int

const (
	pass      verdict = iota // hand to sipgo
	reply                    // send resp, stop
	drop                     // silence
	closeConn                // send resp if any, then close the stream
)

// supportedOptions are the option tags we implement (Require, Proxy-Require).
var supportedOptions = map[string]bool{}

// admit runs stages 1–8 on one framed message from src.
func (s *Server) admit(data []byte, src netip.AddrPort) (v verdict, resp []byte) {
	defer func() {
		if p := recover(); p != nil {
			s.recovered(p, "admission", "")
			v, resp = drop, nil
		}
	}()
	// 1. Size.
	if len(data) > s.MaxMessage {
		return drop, nil
	}
	// 2. Parse.
	msg, err := s.parser.ParseSIP(data)
	if err != nil {
		if req, ok := msg.(*sip.Request); ok && req.Via() != nil {
			return reply, s.response(req, 400, "Bad Request")
		}
		if r := rawBadRequest(data); r != nil {
			return reply, r
		}
		return drop, nil
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		res := msg.(*sip.Response)
		if res.Via() == nil || res.CSeq() == nil || res.CallID() == nil || res.From() == nil || res.To() == nil ||
			res.StatusCode < 100 || res.StatusCode > 699 {
			return drop, nil
		}
		return pass, nil
	}
	// 3. Required headers, present and single.
	if req.Via() == nil {
		return drop, nil // nowhere to send an answer
	}
	for _, name := range []string{"From", "To", "Call-ID", "CSeq", "Max-Forwards"} {
		switch n := len(req.GetHeaders(name)); {
		case n == 0:
			return reply, s.response(req, 400, "Missing "+name)
		case n > 1:
			return reply, s.response(req, 400, "Duplicate "+name)
		}
	}
	if len(req.GetHeaders("Content-Length")) > 1 {
		return reply, s.response(req, 400, "Duplicate Content-Length")
	}
	// 4. Version.
	if req.SipVersion != "SIP/2.0" {
		return reply, s.response(req, 505, "Version Not Supported")
	}
	// 5. CSeq and numeric ranges.
	cseq := req.CSeq()
	if !strings.EqualFold(string(cseq.MethodName), string(req.Method)) || string(cseq.MethodName) != string(req.Method) {
		return reply, s.response(req, 400, "CSeq Method Mismatch")
	}
	if cseq.SeqNo > 1<<31-1 {
		return reply, s.response(req, 400, "Bad CSeq")
	}
	if mf := req.MaxForwards(); mf == nil || mf.Val() > 255 {
		return reply, s.response(req, 400, "Bad Max-Forwards")
	}
	if h := req.GetHeader("Expires"); h != nil {
		if _, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32); err != nil {
			return reply, s.response(req, 400, "Bad Expires")
		}
	}
	// 6. Option tags.
	if req.Method != sip.ACK && req.Method != sip.CANCEL {
		var unsupported []string
		for _, name := range []string{"Proxy-Require", "Require"} {
			for _, h := range req.GetHeaders(name) {
				for _, tag := range strings.Split(h.Value(), ",") {
					if tag = strings.TrimSpace(tag); tag != "" && !supportedOptions[strings.ToLower(tag)] {
						unsupported = append(unsupported, tag)
					}
				}
			}
		}
		if len(unsupported) > 0 {
			r := sip.NewResponseFromRequest(req, 420, "Bad Extension", nil)
			r.AppendHeader(sip.NewHeader("Unsupported", strings.Join(unsupported, ", ")))
			return reply, []byte(r.String())
		}
	}
	// 7. Request-URI scheme.
	switch strings.ToLower(req.Recipient.Scheme) {
	case "sip", "sips", "tel":
	default:
		return reply, s.response(req, 416, "Unsupported URI Scheme")
	}
	// 8. Ban.
	if s.bans.banned(src.Addr().Unmap(), s.Now()) {
		return drop, nil
	}
	return pass, nil
}

// response renders a stateless answer to req.
func (s *Server) response(req *sip.Request, code int, reason string) []byte {
	return []byte(sip.NewResponseFromRequest(req, code, reason, nil).String())
}

// rawBadRequest answers 400 to a request the parser refused, when its
// request line and the headers a response needs can be read as text;
// otherwise it returns nil (silence).
func rawBadRequest(data []byte) []byte {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	if len(lines) < 2 {
		return nil
	}
	parts := strings.Fields(lines[0])
	if len(parts) != 3 || parts[2] != "SIP/2.0" || strings.HasPrefix(lines[0], "SIP/") {
		return nil
	}
	var b strings.Builder
	b.WriteString("SIP/2.0 400 Bad Request\r\n")
	var have = map[string]bool{}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n := canonicalName(strings.TrimSpace(name))
		switch n {
		case "Via", "From", "To", "Call-ID", "CSeq":
			have[n] = true
			b.WriteString(n + ": " + strings.TrimSpace(value) + "\r\n")
		}
	}
	if !have["Via"] || !have["CSeq"] || !have["Call-ID"] {
		return nil
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

func canonicalName(n string) string {
	switch strings.ToLower(n) {
	case "via", "v":
		return "Via"
	case "from", "f":
		return "From"
	case "to", "t":
		return "To"
	case "call-id", "i":
		return "Call-ID"
	case "cseq":
		return "CSeq"
	}
	return n
}

// serve is stages 9–10 for every request sipgo hands us.
func (s *Server) serve(req *sip.Request, tx sip.ServerTransaction) {
	defer func() {
		if p := recover(); p != nil {
			s.recovered(p, string(req.Method), req.CallID().Value())
			tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
		}
	}()
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return
	}
	switch req.Method {
	case sip.ACK:
		return // a 2xx ACK for a dialog we do not keep: absorb
	case sip.OPTIONS:
		s.options(req, tx)
		return
	case sip.CANCEL:
		// A CANCEL that matched a transaction never gets here.
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	case sip.REGISTER:
		user, ok := s.authenticate(req, tx, src, false)
		if !ok {
			return
		}
		s.register(req, tx, src, user)
		return
	}
	// Other requests: a trunk's are trusted, anyone else proves who they are.
	if _, trusted := s.dir.TrustedTrunk(src); !trusted {
		if _, ok := s.authenticate(req, tx, src, true); !ok {
			return
		}
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		s.respond(tx, req, 483, "Too Many Hops")
		return
	}
	s.respond(tx, req, 501, "Not Implemented")
}

// authenticate checks the request's digest credentials (Authorization, or
// Proxy-Authorization when proxy) and challenges when they are missing,
// stale or wrong. Failures count towards the source's ban.
func (s *Server) authenticate(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, proxy bool) (string, bool) {
	hdr, code, reason, chal := "Authorization", 401, "Unauthorized", "WWW-Authenticate"
	if proxy {
		hdr, code, reason, chal = "Proxy-Authorization", 407, "Proxy Authentication Required", "Proxy-Authenticate"
	}
	value := ""
	for _, h := range req.GetHeaders(hdr) {
		if v := h.Value(); strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), "digest") {
			value = strings.TrimSpace(v)
			break
		}
	}
	now := s.Now()
	user, outcome := s.nonces.verify(s.dir, value, string(req.Method), now)
	if outcome == authOK {
		return user, true
	}
	if outcome == authFailed {
		s.authFailures.Add(1)
		if s.bans.fail(src.Addr().Unmap(), now) {
			s.securityLog(src)
		}
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, c := range s.nonces.challenges(now, s.dir.Realm(), outcome == authStale, s.algorithms()) {
		res.AppendHeader(sip.NewHeader(chal, c))
	}
	if err := tx.Respond(res); err != nil {
		s.Log.Debug("respond failed", "call_id", req.CallID().Value(), "status", code, "error", err)
	}
	return "", false
}

func (s *Server) securityLog(src netip.AddrPort) {
	s.Log.Warn("security", "event", "auth_ban", "src", src.Addr().Unmap().String(), "for", s.BanFor.String())
}

// allow is what the server implements, for Allow headers.
const allow = "REGISTER, OPTIONS, ACK"

func (s *Server) options(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", allow))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	tx.Respond(res)
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

// algorithms is the challenge order: MD5 first unless DigestSHA256First.
func (s *Server) algorithms() []string {
	if s.DigestSHA256First {
		return []string{"SHA-256", "MD5"}
	}
	return []string{"MD5", "SHA-256"}
}

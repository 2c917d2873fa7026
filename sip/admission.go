package sip

// The one admission pipeline. Every received message passes these stages in
// order; a stage that rejects answers with a fixed status (or silence) and
// the later stages never see the message:
//
//  1. size limit (MaxMessage, default 64 KiB)           → silence (UDP), 413 + close (TCP)
//  2. parse                                             → 400 when a reply can be addressed, else silence
//     (a version other than SIP/2.0 that does not parse → 505)
//  3. required headers present and single               → 400 (no Via: silence)
//     (Via, From, To, Call-ID, CSeq, Max-Forwards; Content-Length at most
//     once; a REGISTER's To and From SIP or SIPS URIs)
//  4. SIP/2.0 only                                      → 505
//  5. CSeq method equals the method; numbers in range   → 400
//  6. unknown Require / Proxy-Require option tags       → 420 with Unsupported
//  7. unknown Request-URI scheme                        → 416
//  8. ban (too many failed authentications)             → silence
//  9. authentication (trunk source, or digest)          → 401 / 407 challenge
// 10. routing                                           → registrar, OPTIONS, ...
//
// Stages 1–8 run on the raw bytes before sipgo sees them (admit, called by
// the socket wrappers in conn.go), with the stateless half of 9; 9–10 run
// in the request handler (serve).
// Responses are checked by stages 1–3 only and then go to sipgo's
// transaction layer, which drops the unsolicited ones.
//
// Where sipgo's parser disagrees with RFC 3261 the pipeline works on the
// raw bytes: white space around ';' '=' ',' is tidied away before parsing
// (tidyHeaders), a Request-URI of a scheme sipgo cannot parse is replaced
// by a placeholder until stage 7, answers to messages sipgo cannot parse
// are built from their raw text (rawAnswer), and the method is compared
// as sent (sipgo upper-cases it). The RFC 4475 and RFC 5118 corpora run
// through all of it (corpus_test.go).

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// verdict is what admission decided for one message.
type verdict int

const (
	pass      verdict = iota // hand the returned message to sipgo
	reply                    // send resp, stop
	drop                     // silence
	closeConn                // send resp if any, then close the stream
	handled                  // taken care of; its answer goes out later
)

// supportedOptions are the option tags we implement (Require, Proxy-Require).
var supportedOptions = map[string]bool{}

// admit runs stages 1–8 on one framed message from src. It returns the
// answer to send (reply, closeConn) or, with pass, the message as sipgo
// must read it (see tidyHeaders). A panic in the stages is recovered,
// counted and logged, and the message dropped.
func (s *Server) admit(data []byte, src netip.AddrPort) (v verdict, resp []byte) {
	defer func() {
		if p := recover(); p != nil {
			s.recovered(p, "admission", "")
			v, resp = drop, nil
		}
	}()
	return s.stages(data, src)
}

// stages is admit without the recover, so that a fuzz target sees panics.
func (s *Server) stages(data []byte, src netip.AddrPort) (verdict, []byte) {
	return s.stagesInto(data, src, nil)
}

// admitFrom is admit for a socket that can answer later: an authenticated
// REGISTER is then handled statelessly (registerStateless) and answered
// through respond, never reaching sipgo's transaction layer.
func (s *Server) admitFrom(data []byte, src netip.AddrPort, transport string, respond func([]byte)) (v verdict, resp []byte) {
	defer func() {
		if p := recover(); p != nil {
			s.recovered(p, "admission", "")
			v, resp = drop, nil
		}
	}()
	var req *sip.Request
	v, resp = s.stagesInto(data, src, &req)
	if v == pass && req != nil && req.Method == sip.REGISTER && respond != nil {
		select {
		case s.registering <- struct{}{}:
		default:
			return drop, nil // too many in flight: the phone retransmits
		}
		req.SetTransport(transport)
		if !s.goTracked(func() {
			defer func() { <-s.registering }()
			s.registerStateless(req, src, respond)
		}) {
			<-s.registering
			return drop, nil // shutting down
		}
		return handled, nil
	}
	return v, resp
}

// stagesInto runs stages 1–8 (and the stateless challenge); on pass it
// stores the parsed request in *out when out is not nil.
func (s *Server) stagesInto(data []byte, src netip.AddrPort, out **sip.Request) (verdict, []byte) {
	// 1. Size.
	if len(data) > s.MaxMessage {
		return drop, nil
	}
	// 2. Parse.
	p, v, resp := s.parse(data, src)
	if v != pass || p.req == nil {
		return v, resp
	}
	req := p.req
	// 3-5. Required headers, version, CSeq and ranges.
	if req.Via() == nil {
		return drop, nil // nowhere to send an answer
	}
	if resp := s.validate(req, p.line); resp != nil {
		return reply, resp
	}
	// 6. Option tags.
	if resp := optionTags(req); resp != nil {
		return reply, resp
	}
	// 7. Request-URI scheme.
	scheme := p.scheme
	if scheme == "" {
		scheme = req.Recipient.Scheme
	}
	switch strings.ToLower(scheme) {
	case "sip", "sips", "tel":
	default:
		return reply, s.response(req, 416, "Unsupported URI Scheme")
	}
	// 8. Ban (a trunk's addresses are never banned).
	if s.bans.Banned(src.Addr().Unmap(), "", s.Now()) && !s.trusted(src) {
		return drop, nil
	}
	// 9, the stateless half.
	if v, resp, done := s.admitCredentials(req, len(p.data), src); done {
		return v, resp
	}
	if out != nil {
		*out = req
	}
	return pass, p.data
}

// parsed is a request as stage 2 read it: the request, its start line as
// sent, the Request-URI scheme sipgo could not parse ("" when it could),
// and the bytes sipgo must read (tidied, with rport).
type parsed struct {
	req    *sip.Request
	line   startLine
	scheme string
	data   []byte
}

// parse is stage 2: what sipgo will parse, tidied and with rport. A
// response goes to admitResponse (p.req nil, v pass with its bytes);
// garbage is dropped; a request sipgo cannot parse is answered from its
// raw text.
func (s *Server) parse(data []byte, src netip.AddrPort) (p parsed, v verdict, resp []byte) {
	data = tidyHeaders(data)
	line := splitStartLine(data)
	switch {
	case line.response:
		v, resp = s.admitResponse(data)
		return parsed{}, v, resp
	case !line.request:
		return parsed{}, drop, nil // garbage
	}
	data = withRport(data)
	toParse, scheme := data, ""
	if line.exact && foreignScheme(line.uri) {
		// RFC 3261 allows any absoluteURI as Request-URI, but sipgo's URI
		// parser refuses schemes with digits, '+', '-' or '.' ("soap.beep:")
		// and the message would get 400 where stage 7 owes it 416. Parse it
		// with a placeholder URI; stage 7 judges the scheme sent.
		scheme = uriScheme(line.uri)
		toParse = replaceRequestURI(data, line, "sip:foreign-scheme.invalid")
	}
	msg, err := s.parser.ParseSIP(toParse)
	req, ok := msg.(*sip.Request)
	if err != nil || !ok {
		// sipgo stops at the first header it cannot parse, so its partial
		// message may lack Call-ID or CSeq: answer from the raw text. A
		// version we do not speak may be why it did not parse (SIP/7.0 in
		// the Via too): that is the answer then.
		if line.version != "SIP/2.0" {
			v, resp = answer(rawAnswer(data, 505, "Version Not Supported"))
			return parsed{}, v, resp
		}
		v, resp = answer(rawAnswer(data, 400, "Bad Request"))
		return parsed{}, v, resp
	}
	if req.SipVersion != line.version {
		// White space after the version: sipgo keeps it and would echo it
		// in every answer's status line. Malformed, as with a space (trws).
		return parsed{}, reply, s.response(req, 400, "Bad Request")
	}
	if src.IsValid() {
		req.SetSource(src.String()) // for rport in our answers
	}
	return parsed{req: req, line: line, scheme: scheme, data: data}, pass, nil
}

// validate is stages 3 to 5: required headers present and single, the
// version, CSeq and numeric ranges. It returns the answer, or nil.
func (s *Server) validate(req *sip.Request, line startLine) []byte {
	counts := countHeaders(req)
	for i, name := range singleHeaders[:len(singleHeaders)-1] {
		switch counts[i] {
		case 0:
			return s.response(req, 400, "Missing "+name)
		case 1:
		default:
			return s.response(req, 400, "Duplicate "+name)
		}
	}
	if counts[len(singleHeaders)-1] > 1 {
		return s.response(req, 400, "Duplicate Content-Length")
	}
	if req.Method == sip.REGISTER && (!aorScheme(req.To().Address.Scheme) || !aorScheme(req.From().Address.Scheme)) {
		// The address of record must be a SIP or SIPS URI (RFC 3261 §10.2,
		// RFC 4475 unksm2): no credentials can fix that, so say it before
		// the challenge.
		return s.response(req, 400, "Bad To or From URI")
	}
	// 4. Version (upper case: we would echo it, and must send upper case).
	if req.SipVersion != "SIP/2.0" {
		return s.response(req, 505, "Version Not Supported")
	}
	// 5. CSeq and numeric ranges. Methods are case-sensitive; sipgo upper-
	// cases the request line's, so compare with the method as sent.
	cseq := req.CSeq()
	if strings.TrimSpace(string(cseq.MethodName)) != line.method {
		return s.response(req, 400, "CSeq Method Mismatch")
	}
	if cseq.SeqNo > 1<<31-1 {
		return s.response(req, 400, "Bad CSeq")
	}
	if mf := req.MaxForwards(); mf == nil || mf.Val() > 255 {
		return s.response(req, 400, "Bad Max-Forwards")
	}
	if h := headerNamed(req, "Expires"); h != nil {
		if _, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32); err != nil {
			return s.response(req, 400, "Bad Expires")
		}
	}
	return nil
}

// optionTags is stage 6: 420 with Unsupported for an option tag we do not
// implement in Proxy-Require, or in Require of a request we answer
// ourselves (ACK and CANCEL are never refused), else nil. An INVITE's
// Require is for the phone that answers it (RFC 3261 §16.3: a proxy
// checks only Proxy-Require); when voicemail answers, it checks it then.
func optionTags(req *sip.Request) []byte {
	if req.Method == sip.ACK || req.Method == sip.CANCEL {
		return nil
	}
	names := []string{"Proxy-Require", "Require"}
	if req.Method == sip.INVITE {
		names = names[:1]
	}
	var unsupported []string
	for _, name := range names {
		for _, h := range headersNamed(req, name) {
			for _, tag := range strings.Split(h.Value(), ",") {
				if tag = strings.TrimSpace(tag); tag != "" && !supportedOptions[strings.ToLower(tag)] {
					unsupported = append(unsupported, tag)
				}
			}
		}
	}
	if len(unsupported) == 0 {
		return nil
	}
	r := newResponse(req, 420, "Bad Extension")
	r.AppendHeader(sip.NewHeader("Unsupported", strings.Join(unsupported, ", ")))
	return []byte(r.String())
}

// admitCredentials is the first half of stage 9: nothing is kept for a
// request until it proves who sent it. A REGISTER without credentials is
// challenged statelessly, as Kamailio's registrar does (with them, it is
// checked as it is answered, statelessly too: admitFrom); other requests
// outside a dialog are checked here and challenged statelessly unless they
// pass (the handler checks them again and uses up the nonce count). A
// retransmission simply gets the same again. done reports an answer (or
// silence) decided here.
func (s *Server) admitCredentials(req *sip.Request, size int, src netip.AddrPort) (v verdict, resp []byte, done bool) {
	switch {
	case req.Method == sip.REGISTER && credentials(req, "Authorization", s.dir.Realm()) == nil:
		if s.bans.Banned(src.Addr().Unmap(), req.To().Address.User, s.Now()) && !s.trusted(src) {
			return drop, nil, true
		}
		v, resp = s.admitUnproven(req, size, src, authVerdict{challenge: s.challenge(req, src, false, false)})
		return v, resp, true
	case s.needsProxyAuth(req, src):
		if a := s.checkAuth(req, src, true, true); a.challenge != nil || a.silent {
			v, resp = s.admitUnproven(req, size, src, a)
			return v, resp, true
		}
	}
	return pass, nil, false
}

// singleHeaders appear once in a request: all but the last (Content-
// Length, which may be left out) must.
var singleHeaders = [...]string{"From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length"}

// countHeaders counts the singleHeaders of req, in one pass.
func countHeaders(req *sip.Request) (n [len(singleHeaders)]int) {
	for _, h := range req.Headers() {
		name := h.Name()
		for i, single := range singleHeaders {
			if strings.EqualFold(name, single) {
				n[i]++
				break
			}
		}
	}
	return n
}

// admitResponse is stages 2–3 for a response: one that does not parse or
// lacks what a transaction is matched by is dropped; the rest go to the
// transaction layer, which drops the unsolicited ones. Never an answer.
func (s *Server) admitResponse(data []byte) (verdict, []byte) {
	msg, err := s.parser.ParseSIP(data)
	res, ok := msg.(*sip.Response)
	if err != nil || !ok {
		return drop, nil
	}
	if res.Via() == nil || res.CSeq() == nil || res.CallID() == nil || res.From() == nil || res.To() == nil ||
		res.StatusCode < 100 || res.StatusCode > 699 {
		return drop, nil
	}
	for _, name := range []string{"From", "To", "Call-ID", "CSeq", "Content-Length"} {
		if len(res.GetHeaders(name)) > 1 {
			return drop, nil
		}
	}
	return pass, data
}

// answer is reply with r, or silence when there is none.
func answer(r []byte) (verdict, []byte) {
	if r == nil {
		return drop, nil
	}
	return reply, r
}

// response renders a stateless answer to req.
func (s *Server) response(req *sip.Request, code int, reason string) []byte {
	return []byte(newResponse(req, code, reason).String())
}

// newResponse is sipgo's response to req, in the version we speak (sipgo
// copies the request's, so a 505 would otherwise claim SIP/7.0).
func newResponse(req *sip.Request, code int, reason string) *sip.Response {
	r := sip.NewResponseFromRequest(req, code, reason, nil)
	r.SipVersion = "SIP/2.0"
	return r
}

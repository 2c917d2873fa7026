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
	// 2. Parse what sipgo will parse: tidied, with rport.
	data = tidyHeaders(data)
	line := splitStartLine(data)
	switch {
	case line.response:
		return s.admitResponse(data)
	case !line.request:
		return drop, nil // garbage
	}
	data = withRport(data)
	parsed, scheme := data, ""
	if line.exact && foreignScheme(line.uri) {
		// RFC 3261 allows any absoluteURI as Request-URI, but sipgo's URI
		// parser refuses schemes with digits, '+', '-' or '.' ("soap.beep:")
		// and the message would get 400 where stage 7 owes it 416. Parse it
		// with a placeholder URI; stage 7 judges the scheme sent.
		scheme = uriScheme(line.uri)
		parsed = replaceRequestURI(data, line, "sip:foreign-scheme.invalid")
	}
	msg, err := s.parser.ParseSIP(parsed)
	req, ok := msg.(*sip.Request)
	if err != nil || !ok {
		// sipgo stops at the first header it cannot parse, so its partial
		// message may lack Call-ID or CSeq: answer from the raw text. A
		// version we do not speak may be why it did not parse (SIP/7.0 in
		// the Via too): that is the answer then.
		if line.version != "SIP/2.0" {
			return answer(rawAnswer(data, 505, "Version Not Supported"))
		}
		return answer(rawAnswer(data, 400, "Bad Request"))
	}
	if req.SipVersion != line.version {
		// White space after the version: sipgo keeps it and would echo it
		// in every answer's status line. Malformed, as with a space (trws).
		return reply, s.response(req, 400, "Bad Request")
	}
	if src.IsValid() {
		req.SetSource(src.String()) // for rport in our answers
	}
	// 3. Required headers, present and single.
	if req.Via() == nil {
		return drop, nil // nowhere to send an answer
	}
	counts := countHeaders(req)
	for i, name := range singleHeaders[:len(singleHeaders)-1] {
		switch counts[i] {
		case 0:
			return reply, s.response(req, 400, "Missing "+name)
		case 1:
		default:
			return reply, s.response(req, 400, "Duplicate "+name)
		}
	}
	if counts[len(singleHeaders)-1] > 1 {
		return reply, s.response(req, 400, "Duplicate Content-Length")
	}
	if req.Method == sip.REGISTER && (!aorScheme(req.To().Address.Scheme) || !aorScheme(req.From().Address.Scheme)) {
		// The address of record must be a SIP or SIPS URI (RFC 3261 §10.2,
		// RFC 4475 unksm2): no credentials can fix that, so say it before
		// the challenge.
		return reply, s.response(req, 400, "Bad To or From URI")
	}
	// 4. Version (upper case: we would echo it, and must send upper case).
	if req.SipVersion != "SIP/2.0" {
		return reply, s.response(req, 505, "Version Not Supported")
	}
	// 5. CSeq and numeric ranges. Methods are case-sensitive; sipgo upper-
	// cases the request line's, so compare with the method as sent.
	cseq := req.CSeq()
	if strings.TrimSpace(string(cseq.MethodName)) != line.method {
		return reply, s.response(req, 400, "CSeq Method Mismatch")
	}
	if cseq.SeqNo > 1<<31-1 {
		return reply, s.response(req, 400, "Bad CSeq")
	}
	if mf := req.MaxForwards(); mf == nil || mf.Val() > 255 {
		return reply, s.response(req, 400, "Bad Max-Forwards")
	}
	if h := headerNamed(req, "Expires"); h != nil {
		if _, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32); err != nil {
			return reply, s.response(req, 400, "Bad Expires")
		}
	}
	// 6. Option tags.
	if req.Method != sip.ACK && req.Method != sip.CANCEL {
		var unsupported []string
		for _, name := range []string{"Proxy-Require", "Require"} {
			for _, h := range headersNamed(req, name) {
				for _, tag := range strings.Split(h.Value(), ",") {
					if tag = strings.TrimSpace(tag); tag != "" && !supportedOptions[strings.ToLower(tag)] {
						unsupported = append(unsupported, tag)
					}
				}
			}
		}
		if len(unsupported) > 0 {
			r := newResponse(req, 420, "Bad Extension")
			r.AppendHeader(sip.NewHeader("Unsupported", strings.Join(unsupported, ", ")))
			return reply, []byte(r.String())
		}
	}
	// 7. Request-URI scheme.
	if scheme == "" {
		scheme = req.Recipient.Scheme
	}
	switch strings.ToLower(scheme) {
	case "sip", "sips", "tel":
	default:
		return reply, s.response(req, 416, "Unsupported URI Scheme")
	}
	// 8. Ban (a trunk's addresses are never banned).
	if s.bans.banned(src.Addr().Unmap(), "", s.Now()) && !s.trusted(src) {
		return drop, nil
	}
	// 9, the first half: nothing is kept for a request until it proves who
	// sent it. A REGISTER without credentials is challenged statelessly,
	// as Kamailio's registrar does (with them, it is checked as it is
	// answered, statelessly too: admitFrom); other requests outside a
	// dialog are checked here and challenged statelessly unless they pass
	// (the handler checks them again and uses up the nonce count). A
	// retransmission simply gets the same again.
	switch {
	case req.Method == sip.REGISTER && credentials(req, "Authorization", s.dir.Realm()) == nil:
		if s.bans.banned(src.Addr().Unmap(), req.To().Address.User, s.Now()) && !s.trusted(src) {
			return drop, nil
		}
		return s.admitUnproven(req, len(data), src, authVerdict{challenge: s.challenge(req, src, false, false)})
	case s.needsProxyAuth(req, src):
		if v := s.checkAuth(req, src, true, true); v.challenge != nil || v.silent {
			return s.admitUnproven(req, len(data), src, v)
		}
	}
	if out != nil {
		*out = req
	}
	return pass, data
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

// startLine is the first line of a message, read as text.
type startLine struct {
	request, response bool
	// exact: "method SP uri SP version" with single spaces, as sipgo
	// splits it; uriAt is where uri starts in the message.
	exact                bool
	uriAt                int
	method, uri, version string
}

// splitStartLine reads a request line (a token, anything, a version
// starting with "SIP/") or recognises a status line; anything else is
// garbage (neither).
func splitStartLine(data []byte) startLine {
	end := bytes.Index(data, []byte("\r\n"))
	if end < 0 {
		end = len(data)
	}
	line := string(data[:end])
	if len(line) >= 4 && strings.EqualFold(line[:4], "SIP/") {
		return startLine{response: true}
	}
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return startLine{}
	}
	rest := strings.TrimRight(line[sp+1:], " \t")
	last := strings.LastIndexByte(rest, ' ')
	if last < 0 {
		return startLine{}
	}
	version := rest[last+1:]
	if len(version) < 4 || !strings.EqualFold(version[:4], "SIP/") {
		return startLine{}
	}
	uri := rest[:last]
	return startLine{
		request: true,
		exact:   uri != "" && !strings.ContainsAny(uri, " \t") && len(rest) == len(line)-sp-1,
		uriAt:   sp + 1,
		method:  line[:sp],
		uri:     strings.TrimSpace(uri),
		version: version,
	}
}

// isToken reports whether s is an RFC 3261 token (a method name).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-.!%*_+`'~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

// uriScheme returns the scheme of an absolute URI (RFC 3986 §3.1), or "".
func uriScheme(uri string) string {
	colon := strings.IndexByte(uri, ':')
	if colon < 1 {
		return ""
	}
	for i := 0; i < colon; i++ {
		c := uri[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return ""
		}
	}
	return uri[:colon]
}

// aorScheme reports whether an address of record may have this scheme.
func aorScheme(scheme string) bool {
	return strings.EqualFold(scheme, "sip") || strings.EqualFold(scheme, "sips")
}

// foreignScheme reports a well-formed scheme we do not serve.
func foreignScheme(uri string) bool {
	switch strings.ToLower(uriScheme(uri)) {
	case "", "sip", "sips", "tel":
		return false
	}
	return true
}

// replaceRequestURI returns a copy of data with the Request-URI of an
// exact request line replaced.
func replaceRequestURI(data []byte, line startLine, uri string) []byte {
	out := make([]byte, 0, len(data)+len(uri))
	out = append(out, data[:line.uriAt]...)
	out = append(out, uri...)
	return append(out, data[line.uriAt+len(line.uri):]...)
}

// rawAnswer builds a stateless answer to a request sipgo could not parse
// from the raw text of its Via, From, To, Call-ID and CSeq headers (all
// Vias, in order). It returns nil (silence) when data is not a request or
// has no Via. Values are echoed with control characters blanked, so an
// answer can never carry a header the request smuggled in.
func rawAnswer(data []byte, code int, reason string) []byte {
	if !splitStartLine(data).request {
		return nil
	}
	head := data
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		head = data[:i+2]
	}
	var b strings.Builder
	b.WriteString("SIP/2.0 " + strconv.Itoa(code) + " " + reason + "\r\n")
	vias := 0
	eachHeader(head, func(name, value string) {
		switch n := canonicalName(name); n {
		case "Via", "From", "To", "Call-ID", "CSeq":
			if n == "Via" {
				vias++
			}
			b.WriteString(n + ": " + blankControls(value) + "\r\n")
		}
	})
	if vias == 0 {
		return nil
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// tidiedHeader reports whether tidyHeaders tidies the header named name
// (those whose parameters sipgo reads: From, To, Via, Contact, Route,
// Record-Route, and their compact forms), and whether it is a Via.
func tidiedHeader(name []byte) (tidied, via bool) {
	for _, n := range [...]string{"via", "v", "from", "f", "to", "t", "contact", "m", "route", "record-route"} {
		if len(name) == len(n) && strings.EqualFold(string(name), n) {
			return true, n[0] == 'v'
		}
	}
	return false, false
}

// tidyHeaders removes the linear white space RFC 3261 allows around ';',
// '=' and ',' (and '/' in Via) in the tidied headers, joins their folded
// lines and collapses other runs of white space to one space, outside
// quoted strings and <...>. sipgo keeps that white space inside parameter
// names and values: "From: <sip:a@b> ; tag = 1" has no "tag" for it, so
// it answers a valid request (RFC 4475 wsinv) with a stateless 400 and
// puts a second tag in To. Admission and sipgo both read the result. Other
// headers, the start line and the body are kept byte for byte; a message
// with nothing to tidy comes back as it is.
func tidyHeaders(data []byte) []byte {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	first := bytes.Index(data, []byte("\r\n"))
	if end < 0 || first == end {
		return data
	}
	head := data[:end+2] // every header line ends with its CRLF
	var out []byte
	var scratch [512]byte // a tidied line, when it fits
	for pos := first + 2; pos < len(head); {
		lineEnd := headerEnd(head, pos)
		if lineEnd < 0 {
			return data
		}
		raw := head[pos:lineEnd]
		name, value, ok := bytes.Cut(raw, []byte(":"))
		line := raw
		name = bytes.TrimSpace(name)
		if tidied, via := tidiedHeader(name); ok && tidied {
			t := append(append(scratch[:0], name...), ": "...)
			if t = appendTidy(t, value, via); !bytes.Equal(t, raw) {
				line = t
			}
		}
		if out == nil && !bytes.Equal(line, raw) {
			out = append(make([]byte, 0, len(data)), data[:pos]...)
		}
		if out != nil {
			out = append(append(out, line...), "\r\n"...)
		}
		pos = lineEnd + 2
	}
	if out == nil {
		return data
	}
	return append(out, data[end+2:]...)
}

// withRport returns the request with ";rport" added to its top Via when
// that has none; responses and messages it cannot read come back as they
// are. sipgo sends a UDP response to the source address but to the port in
// the Via (RFC 3261 §18.2.2) unless rport is present (RFC 3581 §4). We
// always answer where the request came from, as admission's own answers
// do: a phone behind NAT (most of ours) hears nothing otherwise, and the
// Via port is only a claim of the sender. Over TCP the answer takes the
// connection anyway; rport only adds received= and rport= to its Via.
func withRport(msg []byte) []byte {
	if splitStartLine(msg).response {
		return msg
	}
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	first := bytes.Index(msg, []byte("\r\n"))
	if end < 0 || first == end {
		return msg
	}
	head := msg[:end+2] // every header line ends with its CRLF
	for pos := first + 2; pos < len(head); {
		lineEnd := headerEnd(head, pos)
		if lineEnd < 0 {
			return msg
		}
		header := head[pos:lineEnd]
		colon := bytes.IndexByte(header, ':')
		if colon < 0 {
			pos = lineEnd + 2
			continue
		}
		if _, via := tidiedHeader(bytes.TrimSpace(header[:colon])); !via {
			pos = lineEnd + 2
			continue
		}
		// The top Via value ends at the first comma outside quotes.
		start, stop := pos+colon+1, lineEnd
		quoted := false
		for i := start; i < lineEnd; i++ {
			switch c := msg[i]; {
			case c == '\\' && quoted:
				i++
			case c == '"':
				quoted = !quoted
			case c == ',' && !quoted:
				stop = i
			}
			if stop != lineEnd {
				break
			}
		}
		_, params, _ := bytes.Cut(msg[start:stop], []byte(";"))
		for len(params) > 0 {
			var p []byte
			p, params, _ = bytes.Cut(params, []byte(";"))
			name, _, _ := bytes.Cut(p, []byte("="))
			if bytes.EqualFold(bytes.Trim(name, " \t\r\n"), []byte("rport")) {
				return msg
			}
		}
		at := stop
		for at > start && strings.IndexByte(" \t\r\n", msg[at-1]) >= 0 {
			at--
		}
		out := make([]byte, 0, len(msg)+len(";rport"))
		out = append(out, msg[:at]...)
		out = append(out, ";rport"...)
		return append(out, msg[at:]...)
	}
	return msg
}

// headerEnd returns where the header starting at pos in head ends: the
// index of the CRLF not followed by a folding SP or HT; -1 when there is
// none.
func headerEnd(head []byte, pos int) int {
	for {
		i := bytes.Index(head[pos:], []byte("\r\n"))
		if i < 0 {
			return -1
		}
		pos += i
		if pos+2 < len(head) && (head[pos+2] == ' ' || head[pos+2] == '\t') {
			pos += 2
			continue
		}
		return pos
	}
}

// appendTidy appends header value v, tidied as tidyHeaders says (folds
// included), to dst.
func appendTidy(dst, v []byte, via bool) []byte {
	quoted, angle, space, afterSep := false, false, false, true
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			dst = append(dst, c)
			if c == '\\' && i+1 < len(v) {
				i++
				dst = append(dst, v[i])
			} else if c == '"' {
				quoted = false
			}
			continue
		case angle:
			dst = append(dst, c)
			angle = c != '>'
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			space = true
			continue
		}
		sep := c == ';' || c == '=' || c == ',' || (via && c == '/')
		if space && !sep && !afterSep {
			dst = append(dst, ' ')
		}
		space, afterSep = false, sep
		dst = append(dst, c)
		quoted, angle = c == '"', c == '<'
	}
	return dst
}

// eachHeader calls fn for each header of a header block (start line
// first, which is skipped; it ends at the first empty line or the end of
// head), with folded lines joined by one space (RFC 3261 §7.3.1). Lines
// without a colon are skipped.
func eachHeader(head []byte, fn func(name, value string)) {
	lines := strings.Split(string(head), "\r\n")
	var cur strings.Builder
	flush := func() {
		if name, value, ok := strings.Cut(cur.String(), ":"); ok {
			fn(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		cur.Reset()
	}
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			cur.WriteByte(' ')
			cur.WriteString(strings.TrimSpace(l))
			continue
		}
		flush()
		cur.WriteString(l)
	}
	flush()
}

// blankControls replaces control characters (but tab) with spaces.
func blankControls(s string) string {
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return ' '
		}
		return r
	}, s)
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
	case "content-length", "l":
		return "Content-Length"
	}
	return n
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
	switch req.Method {
	case sip.ACK:
		s.inDialog(req, tx, src) // a 2xx ACK; dropped unless its dialog is ours
		return
	case sip.OPTIONS:
		if mf := req.MaxForwards(); req.Recipient.User != "" && mf != nil && mf.Val() == 0 {
			// Addressed to a user, so a proxy would forward it and may not:
			// 483 (RFC 3261 §16.3 step 3, RFC 4475 zeromf). An OPTIONS to
			// the server itself is answered whatever its Max-Forwards.
			s.respond(tx, req, 483, "Too Many Hops")
			return
		}
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
	// Inside a dialog we record-routed, or a subscription of ours: the
	// dialog is the credential.
	if req.Method == sip.SUBSCRIBE && req.To().Params.Has("tag") && s.refreshSubscription(req, tx) {
		return
	}
	if req.To().Params.Has("tag") {
		s.inDialog(req, tx, src)
		return
	}
	// Other requests: a trunk's are trusted, anyone else proves who they are.
	user := ""
	if _, trusted := s.dir.TrustedTrunk(src); !trusted {
		u, ok := s.authenticate(req, tx, src, true)
		if !ok {
			return
		}
		user = u
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		s.respond(tx, req, 483, "Too Many Hops")
		return
	}
	s.routeRequest(req, tx, src, user)
}

// allow is what the server implements, for Allow headers.
const allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, UPDATE, INFO, MESSAGE"

func (s *Server) options(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", allow))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp, "+acceptTexts))
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

package sip

// Reading and rewriting messages as raw text, before and beside sipgo's
// parser: the start line, URI schemes, stateless answers to messages sipgo
// cannot parse, and the tidying (white space, rport) that makes sipgo read
// what RFC 3261 allows. Admission (admission.go) uses these; they keep no
// state and answer nothing themselves.

import (
	"bytes"
	"strconv"
	"strings"
)

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

package sip

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// request builds a request: the start line, then the headers, then body.
// A header given as "-Name" removes Name from the defaults; "+Name: v" adds
// a second Name; "Name: v" replaces Name.
func request(start string, edits ...string) []byte {
	headers := []string{
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-adm",
		"Max-Forwards: 70",
		"From: <sip:bob@test.example>;tag=1",
		"To: <sip:alice@test.example>",
		"Call-ID: adm-1@192.0.2.1",
		"CSeq: 1 " + strings.Fields(start)[0],
		"Content-Length: 0",
	}
	for _, e := range edits {
		switch {
		case strings.HasPrefix(e, "-"):
			headers = removeHeader(headers, e[1:])
		case strings.HasPrefix(e, "+"):
			headers = append(headers, e[1:])
		default:
			name, _, _ := strings.Cut(e, ":")
			if i := headerIndex(headers, name); i >= 0 {
				headers[i] = e
			} else {
				headers = append(headers, e)
			}
		}
	}
	return []byte(start + "\r\n" + strings.Join(headers, "\r\n") + "\r\n\r\n")
}

func headerIndex(headers []string, name string) int {
	for i, h := range headers {
		if n, _, _ := strings.Cut(h, ":"); strings.EqualFold(n, name) {
			return i
		}
	}
	return -1
}

func removeHeader(headers []string, name string) []string {
	if i := headerIndex(headers, name); i >= 0 {
		return append(headers[:i:i], headers[i+1:]...)
	}
	return headers
}

const options = "OPTIONS sip:alice@test.example SIP/2.0"

// TestAdmitStages runs each stage's rejections and what must get through.
// want is "pass", "drop" or the answer's status line.
func TestAdmitStages(t *testing.T) {
	e := newEnv(t, nil)
	src := netip.MustParseAddrPort("192.0.2.1:5060")
	big := request(options, "X-Pad: "+strings.Repeat("a", 64<<10))
	tests := []struct {
		name string
		msg  []byte
		want string
		has  []string // in the answer (or the passed message)
	}{
		{"valid", request(options), "pass", nil},
		// 1. Size.
		{"too large", big, "drop", nil},
		// 2. Parse.
		{"garbage", []byte("hello world\r\n\r\n"), "drop", nil},
		{"binary", []byte{0, 1, 2, 0xff, '\r', '\n', '\r', '\n'}, "drop", nil},
		{"request line with spaces in the URI", request("INVITE sip:alice@test.example; lr SIP/2.0", "CSeq: 1 INVITE"), "SIP/2.0 400 Bad Request", []string{"Call-ID: adm-1@192.0.2.1", "CSeq: 1 INVITE"}},
		{"CSeq beyond 2**31-1 (parser error)", request(options, "CSeq: 4294967296 OPTIONS"), "SIP/2.0 400 Bad Request", []string{"CSeq: 4294967296 OPTIONS", "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-adm;rport"}},
		{"unparseable and no Via", request("INVITE <sip:alice@test.example> SIP/2.0", "-Via"), "drop", nil},
		{"unparseable with an injected line", request("INVITE <sip:a@b> SIP/2.0", "To: <sip:a@b>\nX-Injected: 1"), "SIP/2.0 400 Bad Request", []string{"To: <sip:a@b> X-Injected: 1"}},
		{"white space around ; and =", request(options, "From: <sip:bob@test.example> ;\r\n tag = 7"), "pass", []string{"From: <sip:bob@test.example>;tag=7"}},
		// 3. Required headers.
		{"no Via", request(options, "-Via"), "drop", nil},
		{"no From", request(options, "-From"), "SIP/2.0 400 Missing From", nil},
		{"no To", request(options, "-To"), "SIP/2.0 400 Missing To", nil},
		{"no Call-ID", request(options, "-Call-ID"), "SIP/2.0 400 Missing Call-ID", nil},
		{"no CSeq", request(options, "-CSeq"), "SIP/2.0 400 Missing CSeq", nil},
		{"no Max-Forwards", request(options, "-Max-Forwards"), "SIP/2.0 400 Missing Max-Forwards", nil},
		{"duplicate Call-ID", request(options, "+Call-ID: adm-2@192.0.2.1"), "SIP/2.0 400 Duplicate Call-ID", nil},
		{"duplicate Call-ID, compact", request(options, "+i: adm-2@192.0.2.1"), "SIP/2.0 400 Duplicate Call-ID", nil},
		{"duplicate From", request(options, "+From: <sip:eve@test.example>;tag=2"), "SIP/2.0 400 Duplicate From", nil},
		{"duplicate Content-Length", request(options, "+l: 0"), "SIP/2.0 400 Duplicate Content-Length", nil},
		{"REGISTER with a non-SIP To", request("REGISTER sip:test.example SIP/2.0", "To: isbn:2983792873"), "SIP/2.0 400 Bad To or From URI", nil},
		// 4. Version.
		{"SIP/3.0", request("OPTIONS sip:alice@test.example SIP/3.0"), "SIP/2.0 505 Version Not Supported", nil},
		{"tab after the version", request("OPTIONS sip:alice@test.example SIP/2.0\t"), "SIP/2.0 400 Bad Request", nil},
		{"spaces after the version", request("OPTIONS sip:alice@test.example SIP/2.0  "), "SIP/2.0 400 Bad Request", nil},
		{"SIP/7.0 in the Via too", request("OPTIONS sip:alice@test.example SIP/7.0", "Via: SIP/7.0/UDP 192.0.2.1;branch=z9hG4bK-7"), "SIP/2.0 505 Version Not Supported", nil},
		// 5. CSeq and ranges.
		{"CSeq method mismatch", request(options, "CSeq: 1 INVITE"), "SIP/2.0 400 CSeq Method Mismatch", nil},
		{"CSeq method in another case", request(options, "CSeq: 1 options"), "SIP/2.0 400 CSeq Method Mismatch", nil},
		{"extension method in lower case", request("foo sip:alice@test.example SIP/2.0"), "SIP/2.0 407 Proxy Authentication Required", nil},
		{"extension method in lower case, in a dialog", request("foo sip:alice@test.example SIP/2.0", "To: <sip:alice@test.example>;tag=9"), "pass", nil},
		{"Max-Forwards 256", request(options, "Max-Forwards: 256"), "SIP/2.0 400 Bad Max-Forwards", nil},
		{"Expires not a number", request(options, "Expires: soon"), "SIP/2.0 400 Bad Expires", nil},
		// 6. Option tags.
		{"Require unknown", request(options, "Require: foo, bar"), "SIP/2.0 420 Bad Extension", []string{"Unsupported: foo, bar"}},
		{"Proxy-Require unknown", request(options, "Proxy-Require: baz"), "SIP/2.0 420 Bad Extension", []string{"Unsupported: baz"}},
		{"Require on ACK is ignored", request("ACK sip:alice@test.example SIP/2.0", "Require: foo"), "pass", nil},
		// 7. Request-URI scheme.
		{"mailto", request("OPTIONS mailto:alice@test.example SIP/2.0"), "SIP/2.0 416 Unsupported URI Scheme", nil},
		{"scheme sipgo cannot parse", request("OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0"), "SIP/2.0 416 Unsupported URI Scheme", nil},
		{"foreign scheme and a missing header: stage 3 first", request("OPTIONS soap.beep://x SIP/2.0", "-From"), "SIP/2.0 400 Missing From", nil},
		{"tel", request("OPTIONS tel:+15551234 SIP/2.0"), "pass", nil},
		{"sips", request("OPTIONS sips:alice@test.example SIP/2.0"), "pass", nil},
		// Responses: never answered.
		{"response", []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"), "pass", nil},
		{"response without Call-ID", []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"), "drop", nil},
		{"response with status 99", []byte("SIP/2.0 099 Odd\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"), "drop", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, out := e.srv.admit(tt.msg, src)
			got := map[verdict]string{pass: "pass", drop: "drop"}[v]
			if v == reply || v == closeConn {
				got, _, _ = strings.Cut(string(out), "\r\n")
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q\n%s", got, tt.want, out)
			}
			if v == drop && out != nil {
				t.Errorf("drop with bytes: %q", out)
			}
			for _, h := range tt.has {
				if !bytes.Contains(out, []byte("\r\n"+h+"\r\n")) {
					t.Errorf("%q lacks %q:\n%s", got, h, out)
				}
			}
		})
	}
	if e.srv.MaxMessage >= len(big) {
		t.Fatalf("the size case is %d bytes, not over MaxMessage %d", len(big), e.srv.MaxMessage)
	}
	e.noPanics()
}

// TestAdmitBanned: a banned source gets silence, others are served.
func TestAdmitBanned(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.BanThreshold, s.BanSourceThreshold = 2, 2 })
	bad := netip.MustParseAddrPort("192.0.2.66:5060")
	good := netip.MustParseAddrPort("192.0.2.67:5060")
	now := e.srv.Now()
	for _, user := range []string{"a", "b", "c"} {
		e.srv.bans.Fail(bad.Addr(), user, now)
	}
	if v, out := e.srv.admit(request(options), bad); v != drop || out != nil {
		t.Fatalf("banned source: verdict %d, %q; want silence", v, out)
	}
	if v, _ := e.srv.admit(request(options), good); v != pass {
		t.Fatalf("other source: verdict %d, want pass", v)
	}
	e.clock.Advance(e.srv.BanFor + time.Second)
	if v, _ := e.srv.admit(request(options), bad); v != pass {
		t.Fatalf("after the ban: verdict %d, want pass", v)
	}
}

// TestRport: the top Via gets rport unless it has one, so sipgo answers to
// the source port.
func TestRport(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Via: SIP/2.0/UDP h;branch=z9hG4bK1", "Via: SIP/2.0/UDP h;branch=z9hG4bK1;rport"},
		{"Via: SIP/2.0/UDP h;rport;branch=z9hG4bK1", "Via: SIP/2.0/UDP h;rport;branch=z9hG4bK1"},
		{"Via: SIP/2.0/UDP h;RPORT=5", "Via: SIP/2.0/UDP h;RPORT=5"},
		{"v: SIP/2.0/UDP h;branch=z9hG4bK1 , SIP/2.0/UDP g", "v: SIP/2.0/UDP h;branch=z9hG4bK1;rport , SIP/2.0/UDP g"},
		{"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP g", "Via: SIP/2.0/UDP h;branch=z9hG4bK1;rport\r\nVia: SIP/2.0/UDP g"},
		{"Via: SIP/2.0/UDP h;branch=\r\n z9hG4bK1  ", "Via: SIP/2.0/UDP h;branch=\r\n z9hG4bK1;rport  "},
	}
	for _, tt := range tests {
		msg := "OPTIONS sip:a@b SIP/2.0\r\nX: y\r\n" + tt.in + "\r\nCSeq: 1 OPTIONS\r\n\r\nbody"
		want := "OPTIONS sip:a@b SIP/2.0\r\nX: y\r\n" + tt.want + "\r\nCSeq: 1 OPTIONS\r\n\r\nbody"
		if got := string(withRport([]byte(msg))); got != want {
			t.Errorf("%q:\ngot  %q\nwant %q", tt.in, got, want)
		}
	}
	res := "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n"
	if got := string(withRport([]byte(res))); got != res {
		t.Errorf("a response changed: %q", got)
	}
}

// TestTidyHeaders: white space around separators goes, quoted strings,
// URIs in <> and other headers stay.
func TestTidyHeaders(t *testing.T) {
	tests := []struct{ in, want string }{
		{"From: <sip:a@b> ;\r\n  tag = 9", "From: <sip:a@b>;tag=9"},
		{"TO :\r\n sip:a@b ;   tag    = 1", "TO: sip:a@b;tag=1"},
		{`f: "J  R ; = \"" <sip:a@b>;tag=1`, `f: "J  R ; = \"" <sip:a@b>;tag=1`},
		{"Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=x", "Via: SIP/2.0/UDP 192.0.2.2;branch=x"},
		{"v:  SIP  / 2.0  / TCP     h   ;\r\n  branch  =   z9hG4bK9  ,\r\n SIP/2.0/UDP g", "v: SIP/2.0/TCP h;branch=z9hG4bK9,SIP/2.0/UDP g"},
		{"Contact: <sip:a@b; x = y >", "Contact: <sip:a@b; x = y >"},
		{"Subject: a ; b = c", "Subject: a ; b = c"},
		{"X: a\r\n b", "X: a\r\n b"},
	}
	for _, tt := range tests {
		msg := "OPTIONS sip:a@b SIP/2.0\r\n" + tt.in + "\r\nCSeq: 1 OPTIONS\r\n\r\nb ; = c"
		want := "OPTIONS sip:a@b SIP/2.0\r\n" + tt.want + "\r\nCSeq: 1 OPTIONS\r\n\r\nb ; = c"
		if got := string(tidyHeaders([]byte(msg))); got != want {
			t.Errorf("%q:\ngot  %q\nwant %q", tt.in, got, want)
		}
	}
	clean := request(options)
	if got := tidyHeaders(clean); &got[0] != &clean[0] {
		t.Error("a tidy message was copied")
	}
}

// TestFrame covers the stream framing.
func TestFrame(t *testing.T) {
	msg := func(headers, body string) string {
		return "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n" + headers + "\r\n" + body
	}
	ok := msg("Content-Length: 5\r\n", "hello")
	tests := []struct {
		name  string
		buf   string
		max   int
		wantN int
		want  frameKind
	}{
		{"ping", "\r\n\r\n", 1000, 4, framePing},
		{"ping before a message", "\r\n\r\n" + ok, 1000, 4, framePing},
		{"lone CRLF", "\r\nOPTIONS", 1000, 2, frameCRLF},
		{"CRLF alone may start a ping", "\r\n", 1000, 0, frameNeedMore},
		{"CRLF CR may start a ping", "\r\n\r", 1000, 0, frameNeedMore},
		{"empty", "", 1000, 0, frameNeedMore},
		{"message", ok, 1000, len(ok), frameMessage},
		{"message and more", ok + "INVITE", 1000, len(ok), frameMessage},
		{"compact l", msg("l: 5\r\n", "hello"), 1000, len(msg("l: 5\r\n", "hello")), frameMessage},
		{"folded value", msg("Content-Length:\r\n 5\r\n", "hello"), 1000, len(msg("Content-Length:\r\n 5\r\n", "hello")), frameMessage},
		{"same length twice", msg("l: 5\r\nContent-Length: 5\r\n", "hello"), 1000, len(msg("l: 5\r\nContent-Length: 5\r\n", "hello")), frameMessage},
		{"no Content-Length", msg("", ""), 1000, len(msg("", "")), frameUnsized},
		{"body incomplete", msg("Content-Length: 5\r\n", "hel"), 1000, 0, frameNeedMore},
		{"headers incomplete", "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n", 1000, 0, frameNeedMore},
		{"negative", msg("Content-Length: -5\r\n", "hello"), 1000, 0, frameBad},
		{"signed", msg("Content-Length: +5\r\n", "hello"), 1000, 0, frameBad},
		{"not a number", msg("Content-Length: five\r\n", "hello"), 1000, 0, frameBad},
		{"two lengths", msg("Content-Length: 5\r\nl: 3\r\n", "hello"), 1000, 0, frameBad},
		{"empty length", msg("Content-Length: \r\n", ""), 1000, 0, frameBad},
		{"body over the limit", msg("Content-Length: 500\r\n", ""), 100, 0, frameTooLarge},
		{"huge length", msg("Content-Length: 99999999999999999999999\r\n", ""), 1000, 0, frameTooLarge},
		{"headers over the limit", "OPTIONS sip:a@b SIP/2.0\r\n" + strings.Repeat("X: y\r\n", 50), 100, 0, frameTooLarge},
		{"at the limit", ok, len(ok), len(ok), frameMessage},
		{"one over the limit", ok, len(ok) - 1, 0, frameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, kind := frame([]byte(tt.buf), tt.max)
			if n != tt.wantN || kind != tt.want {
				t.Fatalf("frame = (%d, %d), want (%d, %d)", n, kind, tt.wantN, tt.want)
			}
		})
	}
	// Split anywhere: every prefix needs more, the whole is one message.
	two := ok + "\r\n\r\n" + ok
	for i := 1; i < len(ok); i++ {
		if n, kind := frame([]byte(two[:i]), 1000); kind != frameNeedMore || n != 0 {
			t.Fatalf("prefix of %d bytes: (%d, %d), want more", i, n, kind)
		}
	}
	buf, kinds := []byte(two), []frameKind{}
	for len(buf) > 0 && len(kinds) < 10 {
		n, kind := frame(buf, 1000)
		if n == 0 {
			t.Fatalf("stuck at %q (%d)", buf, kind)
		}
		kinds = append(kinds, kind)
		buf = buf[n:]
	}
	if want := []frameKind{frameMessage, framePing, frameMessage}; !slices.Equal(kinds, want) {
		t.Fatalf("stream framed as %v, want %v", kinds, want)
	}
}

// TestStreamConn drives the TCP wrapper through a real connection: a ping
// gets its pong, a lone CRLF nothing, two messages in one write two
// answers, then a broken Content-Length an answer and the end.
func TestStreamConn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	conn, err := net.Dial("tcp", e.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var in []byte // received, not yet checked
	read := func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		for range 100 {
			if want == "pong" && len(in) >= 2 {
				if string(in[:2]) != "\r\n" {
					t.Fatalf("got %q, want a pong", in)
				}
				in = in[2:]
				return
			}
			if n, kind := frame(in, 1<<16); kind == frameMessage {
				got, _, _ := strings.Cut(string(in[:n]), "\r\n")
				in = in[n:]
				if got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
				return
			}
			n, err := conn.Read(buf)
			in = append(in, buf[:n]...)
			if err != nil {
				t.Fatalf("reading %q: %v (have %q)", want, err, in)
			}
		}
	}
	conn.Write([]byte("\r\n\r\n"))
	read("pong")
	msg := request("OPTIONS sip:test.example SIP/2.0", "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-s1")
	msg2 := request("OPTIONS sip:test.example SIP/2.0", "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-s2", "CSeq: 2 OPTIONS")
	conn.Write(append(append([]byte("\r\n"), msg...), msg2...))
	read("SIP/2.0 200 OK")
	read("SIP/2.0 200 OK")
	conn.Write(request(options, "Content-Length: -1"))
	read("SIP/2.0 400 Bad Content-Length")
	if n, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection still open after broken framing (read %d)", n)
	}
}

// TestUDPAnswersToSource: with the Via naming another port (and no rport),
// the answer still comes to the port the request came from.
func TestUDPAnswersToSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	msg := request("OPTIONS sip:test.example SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1:5999;branch=z9hG4bK-u1")
	if _, err := pc.WriteTo(msg, net.UDPAddrFromAddrPort(e.addr)); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<16)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := statusOf(buf[:n]); got != 200 {
		t.Fatalf("got %d:\n%s", got, buf[:n])
	}
	if want := ";rport=" + strings.TrimPrefix(pc.LocalAddr().String(), "127.0.0.1:") + ";received=127.0.0.1"; !bytes.Contains(buf[:n], []byte(want)) {
		t.Errorf("Via lacks %q:\n%s", want, buf[:n])
	}
}

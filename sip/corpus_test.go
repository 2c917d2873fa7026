package sip

// The torture corpora (RFC 4475, RFC 5118) run three ways: through the
// admission function, over a real UDP socket and over a real TCP
// connection written in small random chunks. The corpora are the RFCs' own
// messages, kept byte for byte in testdata/rfc4475 and testdata/rfc5118 at
// the repository's root (several files use LF-only or odd line endings on
// purpose).

import (
	"bytes"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// corpora are the corpus names and their loaders.
var corpora = []struct {
	name string
	load func(testing.TB) []torture
}{
	{"rfc4475", loadRFC4475},
	{"rfc5118", loadRFC5118},
}

// admissionCodes are the statuses admission itself answers with; any other
// expected status comes from routing, after admission passed the message.
var admissionCodes = []int{400, 413, 416, 420, 505}

// rejected reports whether code is an admission rejection.
func rejected(code int) bool { return slices.Contains(admissionCodes, code) }

// TestCorpusAdmit feeds every file to the admission function.
func TestCorpusAdmit(t *testing.T) {
	e := newEnv(t, nil)
	src := netip.MustParseAddrPort("127.0.0.1:5062")
	for _, corpus := range corpora {
		t.Run(corpus.name, func(t *testing.T) {
			for _, c := range corpus.load(t) {
				t.Run(c.file, func(t *testing.T) {
					v, resp := e.srv.admit(c.data, src)
					code := 0
					if v == reply || v == closeConn {
						code = replyStatus(t, c.data, resp)
					}
					t.Logf("admit %s: want %s, verdict %d, status %d", c.file, c.expect, v, code)
					if msg := checkAdmit(c, v, code); msg != "" {
						t.Errorf("%s (%s): %s; want %s", c.file, c.what, msg, c.expect)
					}
				})
			}
		})
	}
	e.noPanics()
}

// checkAdmit maps an admission verdict onto the expectation: pass is
// accept, reply carries its status, drop is silence. An expected status
// that routing produces (401, 407, 483, 501...) needs pass. A response
// that is valid syntax may pass: sipgo's transaction layer drops it as
// unsolicited (the socket tests check the silence); an invalid one (class
// I) must die here.
func checkAdmit(c torture, v verdict, code int) string {
	got := map[verdict]string{pass: "pass", drop: "drop", reply: "reply " + strconv.Itoa(code), closeConn: "close " + strconv.Itoa(code)}[v]
	answered := v == reply || (v == closeConn && code != 0)
	// A request without credentials is challenged inside admission
	// (stage 9's stateless half, 401 for a REGISTER, else 407):
	// processed, like a pass.
	challenged := v == reply && (code == 401 || code == 407)
	switch c.expect.kind {
	case "accept":
		if v == pass || challenged {
			return ""
		}
	case "either":
		if v == pass || challenged || (answered && code == 400) {
			return ""
		}
	case "drop":
		if v == drop || (v == pass && c.response() && c.class != "I") {
			return ""
		}
	case "reply":
		if answered && slices.Contains(c.expect.codes, code) {
			return ""
		}
		if v == pass && slices.ContainsFunc(c.expect.codes, func(n int) bool { return !rejected(n) }) {
			return ""
		}
	}
	return "admission said " + got
}

// replyStatus checks an admission answer and returns its status. The
// answer must echo every Via, From, To, Call-ID and CSeq the request had
// (read as text: answers to unparseable requests echo what was sent).
func replyStatus(t testing.TB, req, resp []byte) int {
	t.Helper()
	code := statusOf(resp)
	if code == 0 || !bytes.HasSuffix(resp, []byte("\r\n\r\n")) {
		t.Fatalf("admission answer is not a response:\n%s", resp)
	}
	have := headerNames(resp)
	for name := range headerNames(req) {
		switch name {
		case "Via", "From", "To", "Call-ID", "CSeq":
			if !have[name] {
				t.Errorf("admission answer lacks %s:\n%s", name, resp)
			}
		}
	}
	if code == 420 && !have["Unsupported"] {
		t.Errorf("420 without Unsupported:\n%s", resp)
	}
	return code
}

// headerNames are the canonical names of a message's headers.
func headerNames(msg []byte) map[string]bool {
	names := map[string]bool{}
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	eachHeader(append(head, "\r\n"...), func(name, _ string) { names[canonicalName(name)] = true })
	return names
}

// Waits on the wire: silence is checked for quiet; an answer may take up to
// answerWait. A TCP peer whose message got no answer for stall ends its
// side of the stream (the server may be waiting for promised bytes).
const (
	quiet      = 300 * time.Millisecond
	stall      = 1500 * time.Millisecond
	answerWait = 3 * time.Second
)

// wireResult is what a peer saw after sending one file.
type wireResult struct {
	status int  // first final status; 0 when none
	closed bool // the server closed the connection (TCP)
}

// checkWire maps what the peer saw onto the expectation.
func checkWire(c torture, r wireResult, stream bool) string {
	got := "no answer"
	switch {
	case r.status != 0:
		got = "status " + strconv.Itoa(r.status)
	case r.closed:
		got = "connection closed"
	}
	// Broken framing on a stream (ncl, clerr) may close the connection
	// instead of, or after, answering.
	if stream && r.closed && r.status == 0 && c.expect.kind == "reply" && slices.Contains(c.expect.codes, 400) {
		return ""
	}
	switch c.expect.kind {
	case "accept":
		if c.response() && r.status == 0 && !r.closed {
			return ""
		}
		if !c.response() && r.status != 0 && !rejected(r.status) {
			return ""
		}
	case "either":
		if r.status != 0 && (r.status == 400 || !rejected(r.status)) {
			return ""
		}
	case "drop":
		if r.status == 0 && !r.closed {
			return ""
		}
	case "reply":
		if slices.Contains(c.expect.codes, r.status) {
			return ""
		}
	}
	return got
}

// wantsAnswer says whether an answer is due, so the wait is long.
func (c torture) wantsAnswer() bool {
	return !c.response() && c.expect.kind != "drop"
}

// TestCorpusUDP sends every file as one datagram to a real server. Each
// file gets its own server: several files share a branch and would
// otherwise be taken for retransmissions of each other.
func TestCorpusUDP(t *testing.T) {
	corpusOverWire(t, "UDP", sendUDP)
}

// corpusOverWire sends every file of the corpora with send, each to a
// server of its own, and checks the answer on the wire.
func corpusOverWire(t *testing.T, transport string, send func(*testing.T, netip.AddrPort, torture) wireResult) {
	for _, corpus := range corpora {
		t.Run(corpus.name, func(t *testing.T) {
			for _, c := range corpus.load(t) {
				t.Run(c.file, func(t *testing.T) {
					t.Parallel()
					e := newEnv(t, nil)
					r := send(t, e.addr, c)
					t.Logf("%s %s: want %s, got %+v", transport, c.file, c.expect, r)
					if msg := checkWire(c, r, transport == "TCP"); msg != "" {
						t.Errorf("%s over %s (%s): got %s; want %s", c.file, transport, c.what, msg, c.expect)
					}
					e.noPanics()
				})
			}
		})
	}
}

func sendUDP(t *testing.T, addr netip.AddrPort, c torture) wireResult {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.WriteTo(c.data, net.UDPAddrFromAddrPort(addr)); err != nil {
		t.Fatal(err)
	}
	wait := quiet
	if c.wantsAnswer() {
		wait = answerWait
	}
	pc.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1<<16)
	for range 20 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return wireResult{} // deadline: silence
		}
		if code := statusOf(buf[:n]); code >= 200 || code == 0 {
			return wireResult{status: code}
		}
	}
	t.Fatal("only provisional answers")
	return wireResult{}
}

// statusOf returns the status of a response's start line (0: not a response).
func statusOf(msg []byte) int {
	line, _, _ := bytes.Cut(msg, []byte("\r\n"))
	f := strings.Fields(string(line))
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// TestCorpusTCP writes every file over its own TCP connection in chunks of
// 1–50 random bytes, to its own server.
func TestCorpusTCP(t *testing.T) {
	corpusOverWire(t, "TCP", sendTCP)
}

func sendTCP(t *testing.T, addr netip.AddrPort, c torture) wireResult {
	t.Helper()
	conn, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetNoDelay(true)
	h := fnv.New64a()
	h.Write([]byte(c.file))
	rng := rand.New(rand.NewPCG(4475, h.Sum64()))
	for rest := c.data; len(rest) > 0; {
		n := min(1+rng.IntN(50), len(rest))
		if _, err := conn.Write(rest[:n]); err != nil {
			break // the server closed: read what it said
		}
		rest = rest[n:]
	}
	wait := quiet
	if c.wantsAnswer() {
		wait = stall
	}
	r, eof := readTCPAnswer(t, conn, wait)
	if r.status != 0 || eof || !c.wantsAnswer() {
		r.closed = eof
		return r
	}
	// Nothing came: the server may be waiting for bytes the message
	// promised (a Content-Length beyond the end, no blank line). End our
	// side of the stream; it must answer or close now.
	conn.CloseWrite()
	r, eof = readTCPAnswer(t, conn, answerWait)
	r.closed = eof
	return r
}

// readTCPAnswer reads until the first final response, the end of the
// stream (eof) or the wait.
func readTCPAnswer(t *testing.T, conn net.Conn, wait time.Duration) (r wireResult, eof bool) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(wait))
	var in []byte
	buf := make([]byte, 1<<16)
	for range 1000 {
		n, err := conn.Read(buf)
		in = append(in, buf[:n]...)
		for {
			n, kind := frame(in, 1<<20)
			if kind == frameNeedMore {
				break
			}
			switch kind {
			case framePing, frameCRLF:
				in = in[n:]
				continue
			case frameBad, frameTooLarge:
				t.Fatalf("the server sent bytes that do not frame:\n%q", in)
			}
			code := statusOf(in[:n])
			in = in[n:]
			if code >= 200 || code == 0 {
				return wireResult{status: code}, false
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return wireResult{}, false
			}
			return wireResult{}, true // EOF or reset: closed
		}
	}
	t.Fatal("no final answer in 1000 reads")
	return wireResult{}, false
}

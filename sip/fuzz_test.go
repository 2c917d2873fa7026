package sip

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are hand-written messages plus every file of the RFC 4475 and
// RFC 5118 corpora (../testdata; a missing corpus fails).
func fuzzSeeds(tb testing.TB) [][]byte {
	seeds := [][]byte{
		[]byte("OPTIONS sip:alice@test.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:bob@test.example>;tag=1\r\nTo: <sip:alice@test.example>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"),
		[]byte("INVITE sip:alice@test.example SIP/2.0\r\nv: SIP / 2.0 / UDP 192.0.2.1 ; branch = z9hG4bK2 , SIP/2.0/TCP [2001:db8::1]:5060\r\nMax-Forwards: 70\r\nf: \"Bob \\\"B\\\"\" <sip:bob@test.example>\r\n ; tag = 2\r\nt: alice <sip:alice@test.example>\r\ni: c2\r\nCSeq: 2 INVITE\r\nRequire: foo\r\nc: application/sdp\r\nl: 4\r\n\r\nv=0\r\n"),
		[]byte("REGISTER soap.beep://x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nMax-Forwards: 1\r\nFrom: isbn:1\r\nTo: isbn:1\r\nCall-ID: c3\r\nCSeq: 99999999999 REGISTER\r\nContent-Length: -1\r\n\r\n"),
		[]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;rport\r\nFrom: <sip:bob@test.example>;tag=1\r\nTo: <sip:alice@test.example>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"),
		[]byte("\r\n\r\n"),
		// Found by fuzzing: sipgo reads "0 0,0" as one host, but "0 0;rport,0"
		// as two Vias of which the second does not parse.
		[]byte("REGISTER sip: SIP/2.0\r\nV: //0 0,0\r\nMAX-ForwArds:0\r\nF: sip:\r\nT: sip:\r\nCAll-ID:0\r\nCSeq:0 REGISTER\r\n\r\n"),
		[]byte("garbage SIP/2.0\r\n\r\n"),
	}
	for _, dir := range []string{"rfc4475", "rfc5118"} {
		files, _ := filepath.Glob(filepath.Join(corpusDir(tb, dir), "*"))
		if len(files) == 0 {
			tb.Fatalf("corpus ../testdata/%s is empty", dir)
		}
		for _, f := range files {
			if filepath.Ext(f) == ".md" || filepath.Ext(f) == ".tsv" {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			seeds = append(seeds, data)
		}
	}
	return seeds
}

// FuzzAdmit runs admission (without its recover, so a panic fails) and the
// stream framing on arbitrary bytes, and checks what they promise: answers
// are responses with our fixed status line shape, a passed message parses
// for sipgo, tidying is stable.
func FuzzAdmit(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	e := newEnv(f, nil)
	src := netip.MustParseAddrPort("192.0.2.7:5060")
	f.Fuzz(func(t *testing.T, data []byte) {
		v, out := e.srv.stages(data, src)
		switch v {
		case pass:
			if _, err := e.srv.parser.ParseSIP(out); err != nil {
				t.Fatalf("passed a message sipgo cannot parse: %v\n%q", err, out)
			}
		case reply, closeConn:
			if code := statusOf(out); !bytes.HasPrefix(out, []byte("SIP/2.0 ")) || code < 400 || code > 599 {
				t.Fatalf("answer is not a 4xx/5xx response:\n%q", out)
			}
			if !bytes.HasSuffix(out, []byte("\r\n\r\n")) {
				t.Fatalf("answer does not end its header block:\n%q", out)
			}
		case drop:
			if out != nil {
				t.Fatalf("drop with an answer:\n%q", out)
			}
		default:
			t.Fatalf("verdict %d", v)
		}
		if t1 := tidyHeaders(data); !bytes.Equal(tidyHeaders(t1), t1) {
			t.Fatalf("tidying is not stable:\n%q\n%q", t1, tidyHeaders(t1))
		}
		checkFrames(t, data, 1<<10)
	})
	e.noPanics()
}

// FuzzFrame feeds arbitrary streams and limits to frame().
func FuzzFrame(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint16(1<<10))
	}
	f.Add([]byte("A\r\nl: 3\r\nContent-Length: 3\r\n\r\nabcB\r\n\r\n\r\n\r\n"), uint16(64))
	f.Add([]byte("A\r\nContent-Length:\r\n 99999999999999999999\r\n\r\n"), uint16(64))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		checkFrames(t, data, int(max))
	})
}

// checkFrames frames data the way streamConn does and checks every step:
// sizes in bounds, progress on every frame, a prefix of the stream frames
// as the whole does.
func checkFrames(t *testing.T, data []byte, max int) {
	t.Helper()
	for buf, steps := data, 0; ; steps++ {
		if steps > len(data) {
			t.Fatalf("no progress framing %q", data)
		}
		n, kind := frame(buf, max)
		switch kind {
		case frameNeedMore, frameBad, frameTooLarge:
			if n != 0 {
				t.Fatalf("kind %d with n=%d", kind, n)
			}
			if kind == frameNeedMore && len(buf) > max+4 && !bytes.Contains(buf, []byte("\r\n\r\n")) {
				t.Fatalf("waits for more past the limit (%d > %d)", len(buf), max)
			}
			return
		case framePing:
			if n != 4 {
				t.Fatalf("ping of %d bytes", n)
			}
		case frameCRLF:
			if n != 2 {
				t.Fatalf("CRLF of %d bytes", n)
			}
		case frameMessage, frameUnsized:
			if n <= 0 || n > len(buf) || n > max || !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
				t.Fatalf("message of %d bytes out of %d (max %d)", n, len(buf), max)
			}
			if n2, k2 := frame(buf[:n], max); n2 != n || k2 != kind {
				t.Fatalf("the message alone frames as (%d, %d), not (%d, %d)", n2, k2, n, kind)
			}
		default:
			t.Fatalf("kind %d", kind)
		}
		buf = buf[n:]
	}
}

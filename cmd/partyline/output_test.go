package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/partyline/partyline/inbox"
)

// TestTableEscapesControls is issue 14's finding 10: a text or User-Agent
// carrying terminal escapes (OSC title, clear screen, C1 CSI) must reach
// the operator as visible text, never as raw control bytes.
func TestTableEscapesControls(t *testing.T) {
	rows := [][]string{
		{"text", "hi\x1b]0;pwned\x07 there"},        // OSC: set the window title
		{"ua", "Evil/1.0 \x1b[2J\x1b[H"},            // CSI: clear the screen
		{"c1", "x\u009b2Jy\u0085z"},                 // C1 CSI and NEL, as UTF-8
		{"raw", "a\x9b2Jb\xffc"},                    // C1 CSI as a bare byte (not UTF-8)
		{"layout", "one\ttwo\nthree\rfour\x00\x7f"}, // tab, newline, CR, NUL, DEL
		{"plain", `héllo wörld ☎ C:\path`},          // printable: untouched
	}
	var buf bytes.Buffer
	table(&buf, "KIND\tVALUE", rows)
	out := buf.String()
	for i := 0; i < len(out); i++ {
		b := out[i]
		if (b < 0x20 && b != '\n') || b == 0x7f {
			t.Errorf("raw control byte %#x at %d in:\n%q", b, i, out)
		}
	}
	for _, r := range out {
		if r >= 0x80 && r <= 0x9f {
			t.Errorf("raw C1 control %U in:\n%q", r, out)
		}
	}
	if strings.ContainsRune(out, '\uFFFD') || !strings.Contains(out, `a\x9b2Jb\xffc`) {
		t.Errorf("bytes that are not UTF-8 should show as \\xHH:\n%s", out)
	}
	if got := strings.Count(out, "\n"); got != len(rows)+1 {
		t.Errorf("%d lines, want %d (a cell's newline must not start a row):\n%s", got, len(rows)+1, out)
	}
	for _, want := range []string{
		`hi\x1b]0;pwned\x07 there`,
		`Evil/1.0 \x1b[2J\x1b[H`,
		`x\u009b2Jy\u0085z`,
		`one\ttwo\nthree\rfour\x00\x7f`,
		`héllo wörld ☎ C:\path`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

// TestShowCallEscapesControls: the lines of "calls show" outside its
// table (the remote party, the answering phone's contact and User-Agent,
// all set by whoever sent the call or registered) carry no raw controls.
func TestShowCallEscapesControls(t *testing.T) {
	var buf bytes.Buffer
	showCall(&buf, inbox.Call{ID: "c1", Number: "+15551230001", Direction: "inbound", Remote: "+1555\x1b]0;pwned\x07",
		AnsweredBy: &inbox.Answerer{User: "ann", Contact: "sip:ann@h\x1b[2J", UserAgent: "Evil\u009b2J"}})
	out := buf.String()
	for _, bad := range []string{"\x1b", "\x07", "\u009b"} {
		if strings.Contains(out, bad) {
			t.Fatalf("calls show printed %q raw:\n%q", bad, out)
		}
	}
	if !strings.Contains(out, `\x1b`) {
		t.Fatalf("the escape is not shown:\n%s", out)
	}
}

package sip

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// carrierText is one MESSAGE from the carrier peer p to the test number,
// the same bytes every time it is sent (a retransmission).
func carrierText(p *rawPeer, callID string) string {
	return fmt.Sprintf("MESSAGE sip:%s@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-retx-%s\r\n"+
		"From: <sip:+15550001111@carrier.example>;tag=carrier-1\r\nTo: <sip:%s@127.0.0.1>\r\n"+
		"Call-ID: %s\r\nCSeq: 7 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\nIs the shop open",
		testNumber, p.local, callID, testNumber, callID)
}

// textsStored is how many texts the test number's inbox holds.
func textsStored(t *testing.T, e *env) int {
	t.Helper()
	items, err := e.inbox.Items(testNumber, 100)
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}

// TestTrunkTextRetransmitted: a carrier that misses our 200 resends its
// MESSAGE on RFC 3261's Timer E schedule; copies at 0, 0.5, 6 and 20 s
// (past the 5 s the server once kept transactions) are each answered 200,
// and the text is stored and delivered once. The schedule is the
// carrier's, in real time: the transaction layer's timers are sipgo's.
func TestTrunkTextRetransmitted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	numberWith(t, e, "alice")
	alice := newDevice(t, e, "alice", "udp")
	carrier := newTrunkPeer(t, e)
	msg := carrierText(carrier, "retx-1@carrier")
	start := time.Now()
	for _, at := range []time.Duration{0, 500 * time.Millisecond, 6 * time.Second, 20 * time.Second} {
		time.Sleep(time.Until(start.Add(at))) // the carrier's schedule, not an event to await
		carrier.send(e, msg)
		if res := carrier.final("retx-1@carrier", 3*time.Second); statusCode(res) != 200 {
			t.Fatalf("copy at %v: %q", at, res)
		}
	}
	recv(t, alice.messages, "alice's text")
	if n := textsStored(t, e); n != 1 {
		t.Fatalf("%d texts stored, want 1", n)
	}
	nothingIn(t, alice.messages, "the text delivered twice")
}

// TestTrunkTextRetransmittedAcrossRestart: a copy that arrives after a
// restart (no transaction remembers it) is answered 200 and not stored
// or delivered again; the store knows it by Call-ID, CSeq and From tag.
func TestTrunkTextRetransmittedAcrossRestart(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice")
	alice := newDevice(t, e, "alice", "udp")
	carrier := newTrunkPeer(t, e)
	msg := carrierText(carrier, "retx-2@carrier")
	carrier.send(e, msg)
	if res := carrier.final("retx-2@carrier", 3*time.Second); statusCode(res) != 200 {
		t.Fatalf("first copy: %q", res)
	}
	recv(t, alice.messages, "alice's text")
	e.restart(nil)
	carrier.send(e, msg)
	if res := carrier.final("retx-2@carrier", 3*time.Second); statusCode(res) != 200 {
		t.Fatalf("copy after the restart: %q", res)
	}
	if n := textsStored(t, e); n != 1 {
		t.Fatalf("%d texts stored, want 1", n)
	}
	nothingIn(t, alice.messages, "the first text delivered again")
	// A new text of the same conversation (next CSeq) is stored.
	next := strings.Replace(strings.Replace(msg, "CSeq: 7 MESSAGE", "CSeq: 8 MESSAGE", 1), "branch=z9hG4bK-retx-", "branch=z9hG4bK-next-", 1)
	carrier.send(e, next)
	if res := carrier.final("retx-2@carrier", 3*time.Second); statusCode(res) != 200 {
		t.Fatalf("next text: %q", res)
	}
	if n := textsStored(t, e); n != 2 {
		t.Fatalf("%d texts stored after a new one, want 2", n)
	}
	recv(t, alice.messages, "alice's second text")
}

package sip

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/inbox"
)

// trunkInvite is a carrier's INVITE to the test number from port.
func trunkInvite(e *env, port int, callID, branch string) string {
	return fmt.Sprintf("INVITE sip:%s@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s\r\n"+
		"From: <sip:+15550001111@carrier.example>;tag=c1\r\nTo: <sip:%s@127.0.0.1>\r\n"+
		"Call-ID: %s\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"+
		"Contact: <sip:carrier@127.0.0.1:%d>\r\nContent-Length: 0\r\n\r\n",
		testNumber, e.addr, port, branch, testNumber, callID, port)
}

// aliceBobAndCarrier: the test number with alice and bob, each with a UDP
// device, and a carrier on a trusted trunk as a raw UDP peer.
func aliceBobAndCarrier(t *testing.T, e *env) (alice, bob *device, carrier *udpPeer) {
	t.Helper()
	alice = newDevice(t, e, "alice", "udp")
	bob = newDevice(t, e, "bob", "udp")
	numberWith(t, e, "alice", "bob")
	carrier = newUDPPeer(t)
	if err := e.dir.AddTrunk("", "carrier", "127.0.0.1:5099", []string{fmt.Sprintf("127.0.0.1:%d", carrier.port())}); err != nil {
		t.Fatal(err)
	}
	return alice, bob, carrier
}

// TestForkOnArrivalRetransmissions: a carrier's INVITE is forked as it
// arrives; the same INVITE again, at once and after the call rings, rings
// nobody twice; the caller's CANCEL still reaches every branch through the
// transaction the handler adopted.
func TestForkOnArrivalRetransmissions(t *testing.T) {
	e := newEnv(t, nil)
	alice, bob, carrier := aliceBobAndCarrier(t, e)
	inv := trunkInvite(e, carrier.port(), "arrival-retx@test", "z9hG4bK-arr1")
	carrier.send(e, inv)
	carrier.send(e, inv)
	recv(t, alice.invites, "alice's INVITE")
	recv(t, bob.invites, "bob's INVITE")
	if carrier.await(5*time.Second, func(line string) bool { return strings.HasPrefix(line, "SIP/2.0 180 ") }) == "" {
		t.Fatal("no 180 relayed to the carrier")
	}
	e.srv.arrivals.mu.Lock()
	forked := len(e.srv.arrivals.m)
	e.srv.arrivals.mu.Unlock()
	if forked != 1 {
		t.Fatalf("%d calls forked on arrival, want 1", forked)
	}
	carrier.send(e, inv) // after the handler adopted the fork
	cancel := strings.Replace(strings.Replace(inv, "INVITE sip:", "CANCEL sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 CANCEL", 1)
	carrier.send(e, cancel)
	recv(t, alice.cancels, "alice's CANCEL")
	recv(t, bob.cancels, "bob's CANCEL")
	c := lastCall(t, e, func(c inbox.Call) bool {
		o := outcomes(c)
		return c.EndedAt != nil && o["alice"] == inbox.BranchCallerCancelled && o["bob"] == inbox.BranchCallerCancelled
	})
	if len(c.Branches) != 2 || len(alice.invites) != 0 || len(bob.invites) != 0 {
		t.Fatalf("rang twice: %d branches recorded, %d and %d more INVITEs at the devices", len(c.Branches), len(alice.invites), len(bob.invites))
	}
	calls, err := e.inbox.Calls([]string{testNumber}, 10)
	if err != nil || len(calls) != 1 {
		t.Fatalf("want one call record, got %d (%v)", len(calls), err)
	}
	e.noPanics()
}

// TestForkOnArrivalOrphan: a call forked on arrival whose transaction never
// comes (the INVITE never reaches sipgo) has its branches cancelled after
// AdoptTimeout and is recorded as failed.
func TestForkOnArrivalOrphan(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.AdoptTimeout = 300 * time.Millisecond })
	alice := newDevice(t, e, "alice", "udp")
	numberWith(t, e, "alice")
	src := netip.MustParseAddrPort("127.0.0.1:5098")
	if err := e.dir.AddTrunk("", "carrier", src.String(), []string{src.String()}); err != nil {
		t.Fatal(err)
	}
	msg, err := e.srv.parser.ParseSIP([]byte(trunkInvite(e, int(src.Port()), "arrival-orphan@test", "z9hG4bK-orph")))
	if err != nil {
		t.Fatal(err)
	}
	e.srv.forkOnArrival(msg.(*sip.Request), src, "UDP")
	recv(t, alice.invites, "alice's INVITE")
	c := recv(t, alice.cancels, "alice's CANCEL")
	if got := c.GetHeader("Reason"); got != nil {
		t.Errorf("CANCEL of a call nobody took says %q", got.Value())
	}
	rec := lastCall(t, e, func(c inbox.Call) bool { return c.Disposition == inbox.Failed && c.EndedAt != nil })
	if o := outcomes(rec); o["alice"] != inbox.BranchNoAnswer {
		t.Fatalf("alice's branch: %q, want %q", o["alice"], inbox.BranchNoAnswer)
	}
	if !strings.Contains(e.log.String(), "never got its transaction") {
		t.Errorf("orphan not logged:\n%s", e.log)
	}
	e.noPanics()
}

// TestForkOnArrivalTCPCaller: a carrier's INVITE over TCP is forked on
// arrival too (to UDP devices), its provisional comes back on the
// connection, and its CANCEL reaches every branch.
func TestForkOnArrivalTCPCaller(t *testing.T) {
	e := newEnv(t, nil)
	alice := newDevice(t, e, "alice", "udp")
	bob := newDevice(t, e, "bob", "udp")
	numberWith(t, e, "alice", "bob")
	conn, err := net.Dial("tcp", e.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.TCPAddr)
	if err := e.dir.AddTrunk("", "carrier", local.String(), []string{local.String()}); err != nil {
		t.Fatal(err)
	}
	inv := strings.Replace(trunkInvite(e, local.Port, "arrival-tcp@test", "z9hG4bK-arrtcp"), "SIP/2.0/UDP", "SIP/2.0/TCP", 1)
	if _, err := conn.Write([]byte(inv)); err != nil {
		t.Fatal(err)
	}
	recv(t, alice.invites, "alice's INVITE")
	recv(t, bob.invites, "bob's INVITE")
	// The 180 on the connection (a bounded read: 5 s, 64 KiB).
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(got), "SIP/2.0 180 ") && len(got) < 64<<10 {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no 180 over TCP: %v (read %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	e.srv.arrivals.mu.Lock()
	forked := len(e.srv.arrivals.m)
	e.srv.arrivals.mu.Unlock()
	if forked != 1 {
		t.Fatalf("%d calls forked on arrival, want 1", forked)
	}
	cancel := strings.Replace(strings.Replace(inv, "INVITE sip:", "CANCEL sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 CANCEL", 1)
	if _, err := conn.Write([]byte(cancel)); err != nil {
		t.Fatal(err)
	}
	recv(t, alice.cancels, "alice's CANCEL")
	recv(t, bob.cancels, "bob's CANCEL")
	c := lastCall(t, e, func(c inbox.Call) bool { return c.EndedAt != nil })
	if o := outcomes(c); len(c.Branches) != 2 || o["alice"] != inbox.BranchCallerCancelled || o["bob"] != inbox.BranchCallerCancelled {
		t.Fatalf("history: %+v", c)
	}
	e.noPanics()
}

// TestForkAnswerRelayedOnce: the call's handler can learn of the answer
// (another branch's response wakes it) before the answering branch's
// watcher has relayed the 2xx; the handler must not return, and so let
// sipgo end the server transaction, before that 2xx went through it. When
// it did, the 2xx went upstream twice (through the ended transaction, then
// statelessly) and the carrier ACKed twice (bench/fork3.sh: ann's device
// got 4,001-4,004 ACKs for 4,000 calls).
func TestForkAnswerRelayedOnce(t *testing.T) {
	var waiting sync.Once
	handlerWaits := make(chan struct{})
	endedFirst := make(chan bool, 1)
	e := newEnv(t, func(s *Server) {
		s.hooks.answered = func(f *fork) {
			f.poke() // as a response of another branch does
			select {
			case <-f.tx.Done():
				endedFirst <- true
			case <-handlerWaits:
				endedFirst <- false
			case <-time.After(10 * time.Second):
				endedFirst <- true // neither: the handler is stuck elsewhere
			}
		}
		s.hooks.awaitingRelay = func(*fork) { waiting.Do(func() { close(handlerWaits) }) }
	})
	alice, bob, carrier := aliceBobAndCarrier(t, e)
	carrier.send(e, trunkInvite(e, carrier.port(), "answer-once@test", "z9hG4bK-once"))
	recv(t, alice.invites, "alice's INVITE")
	recv(t, bob.invites, "bob's INVITE")
	bob.answer <- 200
	if recv(t, endedFirst, "the answer") {
		t.Fatal("the server transaction ended before the 2xx was relayed through it")
	}
	recv(t, alice.cancels, "alice's CANCEL")
	// Everything the carrier gets until the answer to a request sent after
	// the 2xx: exactly one 200 for the INVITE.
	if carrier.await(5*time.Second, func(line string) bool { return strings.HasPrefix(line, "SIP/2.0 200 ") }) == "" {
		t.Fatal("no 200 relayed to the carrier")
	}
	carrier.send(e, fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-probe\r\n"+
		"From: <sip:carrier@127.0.0.1>;tag=p1\r\nTo: <sip:%s>\r\nCall-ID: probe@test\r\nCSeq: 1 OPTIONS\r\n"+
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", e.addr, carrier.port(), e.addr))
	buf := make([]byte, 65536)
	for i := 0; ; i++ {
		carrier.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := carrier.conn.ReadFromUDP(buf)
		if err != nil || i == 20 {
			t.Fatalf("no answer to OPTIONS: %v", err)
		}
		msg := string(buf[:n])
		if strings.Contains(msg, "CSeq: 1 OPTIONS") {
			break
		}
		if strings.HasPrefix(msg, "SIP/2.0 2") && strings.Contains(msg, "CSeq: 1 INVITE") {
			t.Fatalf("the INVITE's 2xx came twice:\n%s", msg)
		}
	}
	e.noPanics()
}

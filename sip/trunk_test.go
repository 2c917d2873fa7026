package sip

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// udpPeer is a raw UDP socket on 127.0.0.1 for hand-written requests.
type udpPeer struct {
	t    *testing.T
	conn *net.UDPConn
}

func newUDPPeer(t *testing.T) *udpPeer {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpPeer{t: t, conn: c}
}

func (p *udpPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// ask sends msg to e and returns the first final response's status line
// ("" when nothing arrives within wait).
func (p *udpPeer) ask(e *env, msg string, wait time.Duration) string {
	p.t.Helper()
	p.send(e, msg)
	return p.await(wait, func(line string) bool { return !strings.HasPrefix(line, "SIP/2.0 1") })
}

func (p *udpPeer) send(e *env, msg string) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDP([]byte(msg), net.UDPAddrFromAddrPort(e.addr)); err != nil {
		p.t.Fatal(err)
	}
}

// await reads until a message whose first line want accepts arrives and
// returns that line ("" when none does within wait; at most 20 messages).
func (p *udpPeer) await(wait time.Duration, want func(line string) bool) string {
	buf := make([]byte, 65536)
	deadline := time.Now().Add(wait)
	for i := 0; i < 20; i++ {
		p.conn.SetReadDeadline(deadline)
		n, _, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return ""
		}
		if line, _, _ := strings.Cut(string(buf[:n]), "\r\n"); want(line) {
			return line
		}
	}
	return ""
}

func message(from string, port int, to string) string {
	return fmt.Sprintf("MESSAGE sip:%s@127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%d\r\n"+
		"From: <sip:%s@carrier.example>;tag=1\r\n"+
		"To: <sip:%s@127.0.0.1>\r\n"+
		"Call-ID: trunk-%d@test\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"+
		"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", to, port, time.Now().UnixNano(), from, to, time.Now().UnixNano())
}

// TestTrunkSourceNeedsNoDigest: traffic from a trunk's allowed IP:PORT is
// the carrier's and is not challenged; a phone on the same IP but another
// port is not the carrier and is.
func TestTrunkSourceNeedsNoDigest(t *testing.T) {
	e := newEnv(t, nil)
	carrier, phone := newUDPPeer(t), newUDPPeer(t)
	if err := e.dir.AddTrunk("", "carrier", "127.0.0.1:5099", []string{fmt.Sprintf("127.0.0.1:%d", carrier.port())}); err != nil {
		t.Fatal(err)
	}
	if got := carrier.ask(e, message("+15550001111", carrier.port(), "+15551230001"), 2*time.Second); strings.HasPrefix(got, "SIP/2.0 407") || got == "" {
		t.Fatalf("carrier challenged or unanswered: %q", got)
	}
	if got := phone.ask(e, message("+15550001111", phone.port(), "+15551230001"), 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 407") {
		t.Fatalf("same IP, other port: want 407, got %q", got)
	}
	// A trunk source still needs digest to REGISTER a user.
	reg := fmt.Sprintf("REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-r1\r\n"+
		"From: <sip:alice@127.0.0.1>;tag=2\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: r1@test\r\nCSeq: 1 REGISTER\r\n"+
		"Max-Forwards: 70\r\nContact: <sip:alice@127.0.0.1:1>\r\nContent-Length: 0\r\n\r\n", carrier.port())
	if got := carrier.ask(e, reg, 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 401") {
		t.Fatalf("trunk REGISTER: want 401, got %q", got)
	}
}

// TestLoopDetected: a request carrying our own Via comes back: 482.
func TestLoopDetected(t *testing.T) {
	e := newEnv(t, nil)
	carrier := newUDPPeer(t)
	if err := e.dir.AddTrunk("", "carrier", "127.0.0.1:5099", []string{fmt.Sprintf("127.0.0.1:%d", carrier.port())}); err != nil {
		t.Fatal(err)
	}
	inv := fmt.Sprintf("INVITE sip:+15551230001@127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-loop1\r\n"+
		"Via: SIP/2.0/UDP %s;branch=%s0123\r\n"+
		"From: <sip:+15550001111@carrier.example>;tag=1\r\nTo: <sip:+15551230001@127.0.0.1>\r\n"+
		"Call-ID: loop@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 60\r\nContent-Length: 0\r\n\r\n", carrier.port(), e.addr, branchPrefix)
	if got := carrier.ask(e, inv, 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 482") {
		t.Fatalf("want 482, got %q", got)
	}
}

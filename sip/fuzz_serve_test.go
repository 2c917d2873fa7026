package sip

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline/media"
)

// serveSeeds are whole requests that reach the handlers: a carrier's call
// and text to the shared number, a member's text and call to a colleague
// and out, a REGISTER and a SUBSCRIBE, each with headers in odd spellings.
func serveSeeds(port int) [][]byte {
	via := func(b int) string { return fmt.Sprintf("Via: SIP/2.0/UDP 127.0.0.3:5099;branch=z9hG4bK-fz%d", b) }
	return [][]byte{
		[]byte(fmt.Sprintf("INVITE sip:%s@127.0.0.1:%d SIP/2.0\r\n%s\r\nFrom: <sip:+15550001111@carrier.example>;tag=c1\r\nTo: <sip:%s@127.0.0.1>\r\n"+
			"Call-ID: fz-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nremote-party-id: <sip:x@y>\r\nP-ASSERTED-IDENTITY: <sip:x@y>\r\nContact: <sip:c@127.0.0.3:5099>\r\n"+
			"Content-Type: application/sdp\r\nContent-Length: 75\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
			testNumber, port, via(1), testNumber)),
		[]byte(fmt.Sprintf("MESSAGE sip:%s@127.0.0.1 SIP/2.0\r\n%s\r\nf: <sip:+15550001111@carrier.example>;tag=c2\r\nt: <sip:%s@127.0.0.1>\r\n"+
			"i: fz-2\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nauthorization: Digest username=\"a\"\r\nc: text/plain\r\nl: 2\r\n\r\nhi", testNumber, via(2), testNumber)),
		[]byte(fmt.Sprintf("MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n%s\r\nFrom: <sip:alice@%s>;tag=c3\r\nTo: <sip:bob@127.0.0.1>\r\n"+
			"Call-ID: fz-3\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nproxy-authorization: Digest username=\"alice\", realm=\"%s\", nonce=\"x\", uri=\"sip:bob@127.0.0.1\", response=\"0\"\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", via(3), testRealm, testRealm)),
		[]byte(fmt.Sprintf("INVITE sip:+15550002222@127.0.0.1 SIP/2.0\r\n%s\r\nFrom: <sip:alice@%s>;tag=c4\r\nTo: <sip:+15550002222@127.0.0.1>\r\n"+
			"Call-ID: fz-4\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", via(4), testRealm)),
		[]byte(fmt.Sprintf("REGISTER sip:127.0.0.1 SIP/2.0\r\n%s\r\nFrom: <sip:alice@%s>;tag=c5\r\nTo: <sip:alice@%s>\r\n"+
			"Call-ID: fz-5\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nm: <sip:alice@127.0.0.3:5099>\r\nEXPIRES: 60\r\nuser-agent: x\r\nContent-Length: 0\r\n\r\n", via(5), testRealm, testRealm)),
		[]byte(fmt.Sprintf("SUBSCRIBE sip:alice@127.0.0.1 SIP/2.0\r\n%s\r\nFrom: <sip:alice@%s>;tag=c6\r\nTo: <sip:alice@%s>\r\n"+
			"Call-ID: fz-6\r\nCSeq: 1 SUBSCRIBE\r\nMax-Forwards: 70\r\no: message-summary\r\nm: <sip:alice@127.0.0.3:5099>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n", via(6), testRealm, testRealm)),
		[]byte(fmt.Sprintf("BYE sip:alice@127.0.0.1 SIP/2.0\r\n%s\r\nFrom: <sip:x@y>;tag=c7\r\nTo: <sip:alice@%s>;tag=z\r\n"+
			"Call-ID: fz-7\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nRoute: <sip:127.0.0.1:%d;lr>\r\nContent-Length: 0\r\n\r\n", via(7), testRealm, port)),
	}
}

// FuzzServe sends whole requests to a running server, from a trunk's
// address (so they reach the handlers as a carrier's would) and from an
// untrusted one, and checks with a watchdog that the server handles each
// in bounded time: both sources are answered an OPTIONS right after, and
// every handler has returned within a few seconds (the ring, recording
// and transaction timers are short here). A request that pinned a reader
// or spun in a handler (audit finding 1) fails the target.
func FuzzServe(f *testing.F) {
	e := newEnv(f, func(s *Server) {
		s.RingTime, s.TimerC = 300*time.Millisecond, time.Second
		s.Record = media.RecordOptions{MaxLength: time.Second, NoRTPTimeout: 300 * time.Millisecond, SilenceTimeout: 300 * time.Millisecond}
		s.UnprovenRate = -1
	})
	numberWith(f, e, "alice", "bob")
	// Phones that ring (a forked call's branches are built, and stripped)
	// and take texts; what they get is read away.
	stop := make(chan struct{})
	defer close(stop)
	for _, d := range []*device{newDevice(f, e, "alice", "udp"), newDevice(f, e, "bob", "tcp")} {
		go func() {
			for {
				select {
				case <-d.invites:
				case <-d.cancels:
				case <-d.acks:
				case <-d.byes:
				case <-d.notifies:
				case <-d.messages:
				case <-stop:
					return
				}
			}
		}()
	}
	trunk, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)})
	if err != nil {
		f.Fatal(err)
	}
	defer trunk.Close()
	other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		f.Fatal(err)
	}
	defer other.Close()
	if err := e.dir.AddTrunk("", "carrier", trunk.LocalAddr().String(), []string{trunk.LocalAddr().String()}); err != nil {
		f.Fatal(err)
	}
	for _, s := range serveSeeds(int(e.addr.Port())) {
		f.Add(s)
	}
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	probe := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []*net.UDPConn{trunk, other} {
			if _, err := c.WriteToUDP(data, udpAddr(e.addr)); err != nil && !strings.Contains(err.Error(), "message too long") {
				t.Fatal(err)
			}
		}
		for _, c := range []*net.UDPConn{trunk, other} {
			probe++
			id := fmt.Sprintf("watchdog-%d", probe)
			opt := fmt.Sprintf("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-wd%d\r\nFrom: <sip:w@d>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"+
				"Call-ID: %s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", c.LocalAddr(), probe, id)
			if _, err := c.WriteToUDP([]byte(opt), udpAddr(e.addr)); err != nil {
				t.Fatal(err)
			}
			if !answeredWithin(c, id, 3*time.Second) {
				t.Fatalf("watchdog: no answer to OPTIONS from %s after:\n%q", c.LocalAddr(), data)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for e.srv.handling.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("watchdog: %d handlers still running 5 s after:\n%q", e.srv.handling.Load(), data)
			}
			time.Sleep(2 * time.Millisecond) // a counter, not an event: polled, bounded by the deadline
		}
	})
	e.noPanics()
}

// answeredWithin reads c until a response with Call-ID id arrives (true) or
// wait passes (false); at most 200 datagrams.
func answeredWithin(c *net.UDPConn, id string, wait time.Duration) bool {
	buf := make([]byte, 1<<16)
	deadline := time.Now().Add(wait)
	for range 200 {
		c.SetReadDeadline(deadline)
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return false
		}
		if m := string(buf[:n]); strings.HasPrefix(m, "SIP/2.0 ") && headerValue(m, "Call-ID") == id {
			return true
		}
	}
	return false
}

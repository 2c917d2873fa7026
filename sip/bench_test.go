package sip

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// BenchmarkFork is a carrier's call forked to three phones, over
// loopback UDP: the INVITE sent from the trunk's address, admission, the
// handler, the ring plan, the caller's name looked up, and the three
// branch INVITEs built, sent and read by the phones' sockets. The call
// record's write is left out (uncommitted), and so are the branches'
// retransmissions (T1 is a minute here). ns/op is the time per call with
// the calls sent back to back; -cpu=1 gives the CPU a fork costs.
func BenchmarkFork(b *testing.B) {
	t1, t2, t4 := sip.T1, sip.T2, sip.T4
	sip.SetTimers(time.Minute, t2, t4)
	b.Cleanup(func() { sip.SetTimers(t1, t2, t4) })
	e := newEnv(b, func(s *Server) { s.RingTime = time.Hour })
	e.srv.calls = uncommitted{e.inbox}
	users := []string{"alice", "bob", "carol"}
	if err := e.dir.AddUser("", acl.NewUser{Name: "carol", Password: "secret-carol"}); err != nil {
		b.Fatal(err)
	}
	branches := make(chan struct{}, 3*b.N+16)
	for _, u := range users {
		sinkPhone(b, e, u, branches)
	}
	if _, err := e.dir.AddNumber("", testNumber, "Support"); err != nil {
		b.Fatal(err)
	}
	for _, u := range users {
		if err := e.dir.AddMember("", testNumber, u, acl.RoleMember); err != nil {
			b.Fatal(err)
		}
	}
	trunk, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { trunk.Close() })
	src := trunk.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := e.dir.AddTrunk("", "carrier", src.String(), []string{src.String()}); err != nil {
		b.Fatal(err)
	}
	const sdp = "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	invites := make([][]byte, b.N)
	for i := range invites {
		invites[i] = fmt.Appendf(nil, "INVITE sip:%s@%s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-bench-%d\r\nMax-Forwards: 70\r\n"+
			"From: \"Carrier Caller\" <sip:+15557654321@%s>;tag=%dSIPpTrunk\r\nTo: <sip:%s@%s>\r\n"+
			"Call-ID: %d-bench@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:+15557654321@%s;transport=udp>\r\n"+
			"User-Agent: SIPp fork-trunk\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
			testNumber, e.addr, src, i, src, i, testNumber, e.addr, i, src, len(sdp), sdp)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := trunk.WriteToUDP(invites[i], udpAddr(e.addr)); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.After(time.Minute)
	for range 3 * b.N {
		select {
		case <-branches:
		case <-deadline:
			b.Fatalf("the phones got fewer than %d branch INVITEs within a minute", 3*b.N)
		}
	}
	b.StopTimer()
}

// uncommitted is the inbox without writing call records.
type uncommitted struct{ *inbox.Store }

func (uncommitted) PutCall(*inbox.Call) error { return nil }

// sinkPhone registers a phone for user that reads and never answers,
// signalling branches for each INVITE it gets.
func sinkPhone(b *testing.B, e *env, user string, branches chan struct{}) {
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	sink.(*net.UDPConn).SetReadBuffer(8 << 20) // a burst of branches: no kernel drops
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := sink.ReadFrom(buf)
			if err != nil {
				return
			}
			if n > 7 && string(buf[:7]) == "INVITE " {
				select {
				case branches <- struct{}{}:
				default:
				}
			}
		}
	}()
	addr := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := e.loc.Apply(user, location.Update{CallID: "reg-" + user, CSeq: 1, Source: addr.String(), Transport: "udp",
		UserAgent: "sink", Contacts: []location.Contact{{URI: fmt.Sprintf("sip:%s@%s", user, addr), Expires: time.Hour}}}); err != nil {
		b.Fatal(err)
	}
}

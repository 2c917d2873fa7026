package sip

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// BenchmarkForkOnArrival is the work of a carrier's INVITE on the goroutine
// that read it (bench/fork3.sh's fan-out, less the kernel and the
// scheduler): admission, the ring plan, the caller's name looked up, and
// the three branch INVITEs built, their transactions made and sent to
// devices that never answer. The call record's write, which happens off
// that goroutine, is left out (uncommitted), and so are the branches'
// retransmissions (T1 is a minute here). With -cpu=1, ns/op is all the
// CPU a fork costs.
func BenchmarkForkOnArrival(b *testing.B) {
	t1, t2, t4 := sip.T1, sip.T2, sip.T4
	sip.SetTimers(time.Minute, t2, t4)
	b.Cleanup(func() { sip.SetTimers(t1, t2, t4) })
	e := newEnv(b, func(s *Server) { s.AdoptTimeout = time.Hour })
	e.srv.calls = uncommitted{e.inbox}
	users := []string{"alice", "bob", "carol"}
	if err := e.dir.AddUser("", acl.NewUser{Name: "carol", Password: "secret-carol"}); err != nil {
		b.Fatal(err)
	}
	for _, u := range users {
		sink, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sink.Close() })
		go func() {
			buf := make([]byte, 65536)
			for {
				if _, _, err := sink.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		addr := sink.LocalAddr().(*net.UDPAddr).AddrPort()
		if _, err := e.loc.Apply(u, location.Update{CallID: "reg-" + u, CSeq: 1, Source: addr.String(), Transport: "udp",
			UserAgent: "sink", Contacts: []location.Contact{{URI: fmt.Sprintf("sip:%s@%s", u, addr), Expires: time.Hour}}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.dir.AddNumber("", testNumber, "Support"); err != nil {
		b.Fatal(err)
	}
	for _, u := range users {
		if err := e.dir.AddMember("", testNumber, u, acl.RoleMember); err != nil {
			b.Fatal(err)
		}
	}
	src := netip.MustParseAddrPort("127.0.0.1:5098")
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
		if v, _ := e.srv.admitFrom(invites[i], src, "UDP", nil); v != pass {
			b.Fatalf("INVITE %d: verdict %v", i, v)
		}
	}
	b.StopTimer()
	e.srv.arrivals.mu.Lock()
	forked := make([]*fork, 0, len(e.srv.arrivals.m))
	for _, f := range e.srv.arrivals.m {
		forked = append(forked, f)
	}
	e.srv.arrivals.mu.Unlock()
	if len(forked) != b.N {
		b.Fatalf("%d of %d INVITEs forked on arrival", len(forked), b.N)
	}
	for _, f := range forked {
		if len(f.branches) != len(users) {
			b.Fatalf("%d branches, want %d", len(f.branches), len(users))
		}
		f.arrival.timer.Stop()
		e.srv.orphan(f) // their branches cancelled, their watchers released
	}
}

// uncommitted is the inbox without writing call records.
type uncommitted struct{ *inbox.Store }

func (uncommitted) PutCall(*inbox.Call) error { return nil }

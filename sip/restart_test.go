package sip

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// replyTo is a response to a request's text: its Vias, From, To (with tag
// when it has none), Call-ID, CSeq and Record-Route, plus extra lines.
func replyTo(req string, code int, reason, tag string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, n := range []string{"Via", "Record-Route", "From", "To", "Call-ID", "CSeq"} {
		for _, v := range headerValues(req, n) {
			if n == "To" && tag != "" && !strings.Contains(v, "tag=") {
				v += ";tag=" + tag
			}
			b.WriteString(n + ": " + v + "\r\n")
		}
	}
	for _, x := range extra {
		b.WriteString(x + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// answeredCall sets up a carrier's call to the number answered by alice's
// phone (a raw peer registered as she would be): it returns the carrier,
// the phone, the Route set the carrier learnt, and the INVITE as the
// phone got it.
func answeredCall(t *testing.T, e *env, callID string) (carrier, phone *rawPeer, route, inv string) {
	t.Helper()
	numberWith(t, e, "alice")
	carrier = newTrunkPeer(t, e)
	phone = newRawPeer(t, e, "UDP", "127.0.0.1")
	if _, err := e.loc.Apply("alice", location.Update{CallID: "ph-" + callID, CSeq: 1, Source: phone.local, Transport: "udp",
		Contacts: []location.Contact{{URI: "sip:alice@" + phone.local, Expires: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	carrier.send(e, fmt.Sprintf("INVITE sip:%s@%s SIP/2.0\r\n%s\r\nFrom: <sip:+15550001111@carrier.example>;tag=car1\r\n"+
		"To: <sip:%s@127.0.0.1>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:carrier@%s>\r\nContent-Length: 0\r\n\r\n",
		testNumber, e.addr, carrier.via(), testNumber, callID, carrier.local))
	inv = phone.await(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("the phone did not ring")
	}
	phone.send(e, replyTo(inv, 200, "OK", "ph1", "Contact: <sip:alice@"+phone.local+">"))
	ok := carrier.await(5*time.Second, func(m string) bool { return statusCode(m) == 200 })
	if ok == "" {
		t.Fatal("no 200 to the carrier")
	}
	route = strings.Join(headerValues(ok, "Record-Route"), ", ")
	if !strings.Contains(route, ";"+rrParam+"=") {
		t.Fatalf("our Record-Route carries no token: %q", route)
	}
	carrier.send(e, fmt.Sprintf("ACK sip:alice@%s SIP/2.0\r\n%s\r\nRoute: %s\r\nFrom: <sip:+15550001111@carrier.example>;tag=car1\r\n"+
		"To: <sip:%s@127.0.0.1>;tag=ph1\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		phone.local, carrier.via(), route, testNumber, callID))
	if phone.await(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "ACK ") }) == "" {
		t.Fatal("the ACK did not reach the phone")
	}
	return carrier, phone, route, inv
}

// TestCallSurvivesRestart (issue 16 item 4): a call answered, partyline
// restarted (same address, same key, no memory of the call): a BYE from
// either side reaches the other by what our Record-Route says, its 200
// comes back, and the call's history closes.
func TestCallSurvivesRestart(t *testing.T) {
	for _, side := range []string{"carrier", "phone"} {
		t.Run(side+" hangs up", func(t *testing.T) {
			e := newEnv(t, nil)
			callID := "restart-" + side
			carrier, phone, route, _ := answeredCall(t, e, callID)
			addr := e.addr.String()
			e.restart(func(s *Server) { s.Listen = []string{addr} })
			if e.addr.String() != addr {
				t.Fatalf("restarted on %s, not %s", e.addr, addr)
			}
			from, to := carrier, phone
			bye := fmt.Sprintf("BYE sip:alice@%s SIP/2.0\r\n%s\r\nRoute: %s\r\nFrom: <sip:+15550001111@carrier.example>;tag=car1\r\n"+
				"To: <sip:%s@127.0.0.1>;tag=ph1\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
				phone.local, carrier.via(), route, testNumber, callID)
			if side == "phone" {
				// The phone's route set is the Record-Route reversed: ours only.
				from, to = phone, carrier
				bye = fmt.Sprintf("BYE sip:carrier@%s SIP/2.0\r\n%s\r\nRoute: %s\r\nFrom: <sip:%s@127.0.0.1>;tag=ph1\r\n"+
					"To: <sip:+15550001111@carrier.example>;tag=car1\r\nCall-ID: %s\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
					carrier.local, phone.via(), route, testNumber, callID)
			}
			from.send(e, bye)
			got := to.await(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") })
			if got == "" {
				t.Fatalf("the BYE from the %s did not reach the other side after the restart", side)
			}
			to.send(e, replyTo(got, 200, "OK", ""))
			if res := from.final(callID, 5*time.Second); statusCode(res) != 200 {
				t.Fatalf("the BYE's answer: %q", res)
			}
			c := lastCall(t, e, func(c inbox.Call) bool { return c.EndedAt != nil })
			if c.Disposition != inbox.Answered || c.AnsweredBy == nil || c.AnsweredBy.User != "alice" {
				t.Fatalf("history: %+v", c)
			}
		})
	}
}

// TestForgedRouteToken: a Route of ours with a token we did not sign is
// not followed: an in-dialog request with it gets 481.
func TestForgedRouteToken(t *testing.T) {
	e := newEnv(t, nil)
	carrier := newTrunkPeer(t, e)
	forged := routeToken{Callee: "UDP/192.0.2.9:5060", Tag: "x"}.encode([]byte("not our key"))
	carrier.send(e, fmt.Sprintf("BYE sip:victim@192.0.2.9 SIP/2.0\r\n%s\r\nRoute: <sip:%s;lr;%s=%s>\r\nFrom: <sip:a@b>;tag=x\r\n"+
		"To: <sip:c@d>;tag=y\r\nCall-ID: forged-rr\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		carrier.via(), e.addr, rrParam, forged))
	if res := carrier.final("forged-rr", 3*time.Second); statusCode(res) != 481 {
		t.Fatalf("want 481, got %q", res)
	}
}

// TestPrackInEarlyDialog (issue 16 item 2): a phone's reliable 180 reaches
// the carrier with our Record-Route, and the carrier's PRACK, in the early
// dialog, reaches that phone by it (no 481), its 200 coming back.
func TestPrackInEarlyDialog(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice")
	carrier := newTrunkPeer(t, e)
	phone := newRawPeer(t, e, "UDP", "127.0.0.1")
	if _, err := e.loc.Apply("alice", location.Update{CallID: "ph-prack", CSeq: 1, Source: phone.local, Transport: "udp",
		Contacts: []location.Contact{{URI: "sip:alice@" + phone.local, Expires: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	carrier.send(e, fmt.Sprintf("INVITE sip:%s@%s SIP/2.0\r\n%s\r\nFrom: <sip:+15550001111@carrier.example>;tag=car1\r\n"+
		"To: <sip:%s@127.0.0.1>\r\nCall-ID: prack-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nSupported: 100rel\r\n"+
		"Contact: <sip:carrier@%s>\r\nContent-Length: 0\r\n\r\n", testNumber, e.addr, carrier.via(), testNumber, carrier.local))
	inv := phone.await(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("the phone did not ring")
	}
	phone.send(e, replyTo(inv, 180, "Ringing", "ph1", "Require: 100rel", "RSeq: 1", "Contact: <sip:alice@"+phone.local+">"))
	ringing := carrier.await(5*time.Second, func(m string) bool { return statusCode(m) == 180 })
	route := strings.Join(headerValues(ringing, "Record-Route"), ", ")
	if headerValue(ringing, "RSeq") == "" || !strings.Contains(route, rrParam+"=") {
		t.Fatalf("the reliable 180 upstream:\n%s", ringing)
	}
	carrier.send(e, fmt.Sprintf("PRACK sip:alice@%s SIP/2.0\r\n%s\r\nRoute: %s\r\nFrom: <sip:+15550001111@carrier.example>;tag=car1\r\n"+
		"To: <sip:%s@127.0.0.1>;tag=ph1\r\nCall-ID: prack-1\r\nCSeq: 2 PRACK\r\nRAck: 1 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		phone.local, carrier.via(), route, testNumber))
	prack := phone.await(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "PRACK ") })
	if prack == "" {
		t.Fatal("the PRACK did not reach the phone")
	}
	phone.send(e, replyTo(prack, 200, "OK", ""))
	if res := carrier.await(5*time.Second, func(m string) bool { return strings.HasPrefix(headerValue(m, "CSeq"), "2 PRACK") }); statusCode(res) != 200 {
		t.Fatalf("the PRACK's answer: %q", res)
	}
}

// TestCallAcrossFamilies (issue 16 item 5): a carrier's call over IPv4 to
// a phone registered over IPv6: the phone's INVITE carries our IPv6
// address in Via and two Record-Routes (its side's on top, the carrier's
// below); the carrier's BYE, routed by them, reaches the phone.
func TestCallAcrossFamilies(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.Listen = []string{"127.0.0.1:0", "[::1]:0"} })
	numberWith(t, e, "alice")
	carrier := newTrunkPeer(t, e)
	phone := newRawPeer(t, e, "UDP", "::1")
	if _, err := e.loc.Apply("alice", location.Update{CallID: "ph-v6", CSeq: 1, Source: phone.local, Transport: "udp",
		Contacts: []location.Contact{{URI: "sip:alice@" + phone.local, Expires: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	carrier.send(e, fmt.Sprintf("INVITE sip:%s@%s SIP/2.0\r\n%s\r\nFrom: <sip:+15550001111@carrier.example>;tag=car1\r\n"+
		"To: <sip:%s@127.0.0.1>\r\nCall-ID: v6-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:carrier@%s>\r\nContent-Length: 0\r\n\r\n",
		testNumber, e.addr, carrier.via(), testNumber, carrier.local))
	inv := phone.await(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("the IPv6 phone did not ring")
	}
	if via := headerValue(inv, "Via"); !strings.Contains(via, "[::1]:") {
		t.Fatalf("top Via towards the IPv6 phone: %q", via)
	}
	rrs := headerValues(inv, "Record-Route")
	if len(rrs) < 2 || !strings.Contains(rrs[0], "[::1]") || !strings.Contains(rrs[1], "127.0.0.1") {
		t.Fatalf("Record-Route towards the IPv6 phone: %q", rrs)
	}
	phone.send(e, replyTo(inv, 200, "OK", "ph1", "Contact: <sip:alice@"+phone.local+">"))
	ok := carrier.await(5*time.Second, func(m string) bool { return statusCode(m) == 200 })
	if ok == "" {
		t.Fatal("no 200 to the carrier")
	}
	// The carrier's route set: the Record-Route reversed.
	got := headerValues(ok, "Record-Route")
	var route []string
	for i := len(got) - 1; i >= 0; i-- {
		route = append(route, got[i])
	}
	carrier.send(e, fmt.Sprintf("BYE sip:alice@%s SIP/2.0\r\n%s\r\nRoute: %s\r\nFrom: <sip:+15550001111@carrier.example>;tag=car1\r\n"+
		"To: <sip:%s@127.0.0.1>;tag=ph1\r\nCall-ID: v6-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		phone.local, carrier.via(), strings.Join(route, ", "), testNumber))
	bye := phone.await(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "BYE ") })
	if bye == "" {
		t.Fatal("the BYE did not reach the IPv6 phone")
	}
	if r := headerValues(bye, "Route"); len(r) != 0 {
		t.Fatalf("our Routes reached the phone: %q", r)
	}
}

// TestStrayResponsesNotRelayed: a response of ours that no transaction
// matches goes to the caller only when it is a 2xx to an INVITE; a late
// 180 or a resent 487 is dropped.
func TestStrayResponsesNotRelayed(t *testing.T) {
	e := newEnv(t, nil)
	caller := newRawPeer(t, e, "UDP", "127.0.0.3")
	phone := newRawPeer(t, e, "UDP", "127.0.0.1")
	stillAnswers(t, e, caller) // the caller has talked to us, as one whose call this was
	for i, tc := range []struct {
		status string
		want   bool
	}{{"180 Ringing", false}, {"487 Request Terminated", false}, {"200 OK", true}} {
		id := fmt.Sprintf("stray-%d", i)
		phone.send(e, fmt.Sprintf("SIP/2.0 %s\r\nVia: SIP/2.0/UDP %s;branch=%s\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-c%d\r\n"+
			"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
			tc.status, e.addr, newBranchID(), caller.local, i, id))
		got := caller.await(500*time.Millisecond, func(m string) bool { return headerValue(m, "Call-ID") == id })
		if (got != "") != tc.want {
			t.Errorf("stray %s: relayed %v, want %v", tc.status, got != "", tc.want)
		}
	}
}

// TestDeadFlowFailsAtOnce (issue 16 item 12): alice's phone registered
// over TCP and its connection closed: a call rings bob, and alice's branch
// fails at once with 430 Flow Failed instead of ringing into nothing.
func TestDeadFlowFailsAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	bob := newDevice(t, e, "bob", "udp")
	phone := newRawPeer(t, e, "TCP", "127.0.0.1")
	phone.send(e, rawRegister(e, phone, "alice", "tcp-reg", 1, ""))
	chal := phone.final("tcp-reg", 3*time.Second)
	phone.send(e, rawRegister(e, phone, "alice", "tcp-reg", 2, authorize(t, chal, "REGISTER", "sip:"+e.addr.String(), "alice", 1)))
	if res := phone.final("tcp-reg", 3*time.Second); statusCode(res) != 200 {
		t.Fatalf("alice's REGISTER over TCP: %q", res)
	}
	src, _ := netip.ParseAddrPort(phone.local)
	phone.close()
	for i := 0; !e.srv.conns.flowEnded(src); i++ {
		if i == 500 {
			t.Fatal("the server never saw alice's connection close")
		}
		time.Sleep(10 * time.Millisecond) // the close is the server's read of EOF: polled, bounded
	}
	errc := callAnswer(e, newCarrier(t, e))
	recv(t, bob.invites, "bob's INVITE")
	rec := lastCall(t, e, func(c inbox.Call) bool {
		for _, b := range c.Branches {
			if b.User == "alice" && b.Status == 430 {
				return true
			}
		}
		return false
	})
	if o := outcomes(rec); o["alice"] != inbox.BranchUnreachable || o["bob"] != inbox.BranchRinging {
		t.Fatalf("while bob rings: %+v", rec.Branches)
	}
	bob.answer <- 200
	if err := recv(t, errc, "the call"); err != nil {
		t.Fatal(err)
	}
}

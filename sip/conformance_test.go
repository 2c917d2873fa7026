package sip

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// callAnswer places the carrier's call to the number and returns its
// final answer's error ("" for a 2xx) on the channel.
func callAnswer(e *env, car *carrier, headers ...sip.Header) chan error {
	errc := make(chan error, 1)
	go func() {
		ctx := context.Background()
		from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "+15550009999", Host: "carrier.example"}, Params: sip.NewParams()}
		from.Params.Add("tag", "conf1")
		s, err := car.dialog.Invite(ctx, sip.Uri{Scheme: "sip", User: testNumber, Host: "127.0.0.1", Port: int(e.addr.Port())}, nil, append([]sip.Header{&from}, headers...)...)
		if err == nil {
			err = s.WaitAnswer(ctx, sipgo.AnswerOptions{})
		}
		errc <- err
	}()
	return errc
}

// TestForkDeclineEverywhere (issue 16 item 6): a 603 from one phone ends
// the call: the other phones get CANCEL saying why, the caller gets the
// 603, and no voicemail answers.
func TestForkDeclineEverywhere(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	alice, bob := newDevice(t, e, "alice", "udp"), newDevice(t, e, "bob", "udp")
	errc := callAnswer(e, newCarrier(t, e))
	recv(t, alice.invites, "alice's INVITE")
	recv(t, bob.invites, "bob's INVITE")
	bob.answer <- 603
	c := recv(t, alice.cancels, "alice's CANCEL after bob's decline")
	if h := c.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "cause=603") {
		t.Fatalf("CANCEL Reason: %v", h)
	}
	if err := recv(t, errc, "the caller's answer"); err == nil || !strings.Contains(err.Error(), "603") {
		t.Fatalf("want 603 upstream, got %v", err)
	}
	rec := lastCall(t, e, func(c inbox.Call) bool {
		return c.EndedAt != nil && outcomes(c)["alice"] != inbox.BranchRinging
	})
	if o := outcomes(rec); o["bob"] != inbox.BranchDeclined || o["alice"] != inbox.BranchDeclinedElsewhere || rec.Disposition != inbox.Missed || rec.VoicemailID != "" {
		t.Fatalf("history: %+v", rec)
	}
}

// TestForkDeclinePersonal: with the number's decline personal, bob's 603
// stops only bob; alice rings on and answers.
func TestForkDeclinePersonal(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	if err := e.dir.SetNumberDecline("", testNumber, acl.DeclinePersonal); err != nil {
		t.Fatal(err)
	}
	alice, bob := newDevice(t, e, "alice", "udp"), newDevice(t, e, "bob", "udp")
	errc := callAnswer(e, newCarrier(t, e))
	recv(t, alice.invites, "alice's INVITE")
	recv(t, bob.invites, "bob's INVITE")
	bob.answer <- 603
	nothingIn(t, alice.cancels, "alice cancelled after bob's personal decline")
	alice.answer <- 200
	if err := recv(t, errc, "the caller's answer"); err != nil {
		t.Fatalf("want alice's 200, got %v", err)
	}
}

// TestForkBestResponse (issue 16 item 7): with a hangup flow and nobody
// answering, the caller gets the best failure (486 over 480), not 480;
// a redirect (302, with its Contact) beats both, and the history says
// "redirected" for it.
func TestForkBestResponse(t *testing.T) {
	for _, tc := range []struct {
		name       string
		alice, bob int
		want       string
	}{
		{"busy over no answer", 480, 486, "486"},
		{"redirect first", 302, 486, "302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			numberWith(t, e, "alice", "bob")
			st, _ := acl.ParseStep("alice,bob:60")
			if err := e.dir.SetFlow("", testNumber, []acl.Step{st}, acl.ThenHangup); err != nil {
				t.Fatal(err)
			}
			alice := newDevice(t, e, "alice", "udp", func(d *device) {
				d.final = func(res *sip.Response) {
					if res.StatusCode == 302 {
						res.AppendHeader(sip.NewHeader("Contact", "<sip:+15550001234@carrier.example>"))
					}
				}
			})
			bob := newDevice(t, e, "bob", "udp")
			errc := callAnswer(e, newCarrier(t, e))
			recv(t, alice.invites, "alice's INVITE")
			recv(t, bob.invites, "bob's INVITE")
			alice.answer <- tc.alice
			bob.answer <- tc.bob
			if err := recv(t, errc, "the caller's answer"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %s upstream, got %v", tc.want, err)
			}
			rec := lastCall(t, e, func(c inbox.Call) bool { return c.EndedAt != nil })
			if tc.alice == 302 && outcomes(rec)["alice"] != inbox.BranchRedirected {
				t.Fatalf("history: %+v", rec)
			}
		})
	}
}

// TestForkRequire100rel (issue 16 item 1): a carrier's INVITE with
// Require: 100rel is not ours to refuse: the phones ring and see it; a
// reliable 180 from each phone goes upstream (item 3), not just the first.
func TestForkRequire100rel(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	rel := func(d *device) { d.reliable = true }
	alice, bob := newDevice(t, e, "alice", "udp", rel), newDevice(t, e, "bob", "udp", rel)
	carrier := newTrunkPeer(t, e)
	inv := "INVITE sip:" + testNumber + "@" + e.addr.String() + " SIP/2.0\r\n" + carrier.via() + "\r\n" +
		"From: <sip:+15550001111@carrier.example>;tag=r1\r\nTo: <sip:" + testNumber + "@127.0.0.1>\r\nCall-ID: rel-1\r\n" +
		"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nSupported: 100rel\r\nRequire: 100rel\r\nContact: <sip:c@" + carrier.local + ">\r\nContent-Length: 0\r\n\r\n"
	carrier.send(e, inv)
	for _, d := range []*device{alice, bob} {
		got := recv(t, d.invites, d.user+"'s INVITE")
		if h := got.GetHeader("Require"); h == nil || !strings.Contains(h.Value(), "100rel") {
			t.Fatalf("%s's INVITE lost Require: 100rel:\n%s", d.user, got)
		}
	}
	for i := range 2 {
		if carrier.await(3*time.Second, func(m string) bool { return statusCode(m) == 180 && headerValue(m, "RSeq") != "" }) == "" {
			t.Fatalf("reliable 180 number %d did not reach the caller", i+1)
		}
	}
	if res := carrier.await(100*time.Millisecond, func(m string) bool { return statusCode(m) == 420 }); res != "" {
		t.Fatalf("refused: %s", res)
	}
}

// TestForkTelURI (issue 16 item 8): an INVITE to tel:+1... rings the
// number as sip: does.
func TestForkTelURI(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice")
	alice := newDevice(t, e, "alice", "udp")
	carrier := newTrunkPeer(t, e)
	carrier.send(e, "INVITE tel:"+testNumber+" SIP/2.0\r\n"+carrier.via()+"\r\n"+
		"From: <sip:+15550001111@carrier.example>;tag=t1\r\nTo: <tel:"+testNumber+">\r\nCall-ID: tel-1\r\n"+
		"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:c@"+carrier.local+">\r\nContent-Length: 0\r\n\r\n")
	recv(t, alice.invites, "alice's INVITE for tel:")
	if res := carrier.await(3*time.Second, func(m string) bool { return statusCode(m) >= 180 }); statusCode(res) != 180 {
		t.Fatalf("want 180, got %q", res)
	}
}

// TestMemberCallsOwnNumber (issue 16 item 13): alice calling the shared
// number from her registered phone rings bob, not that phone.
func TestMemberCallsOwnNumber(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	bob := newDevice(t, e, "bob", "udp")
	phone := newRawPeer(t, e, "UDP", "127.0.0.1")
	if _, err := e.loc.Apply("alice", location.Update{CallID: "own", CSeq: 1, Source: phone.local, Transport: "udp",
		Contacts: []location.Contact{{URI: "sip:alice@" + phone.local, Expires: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		done <- phone.call(e, "sip:"+testNumber+"@"+e.addr.String(), "alice", "own-call", 5*time.Second)
	}()
	recv(t, bob.invites, "bob's INVITE")
	bob.answer <- 200
	if res := recv(t, done, "alice's call"); statusCode(res) != 200 {
		t.Fatalf("alice's call: %q", res)
	}
	rec := lastCall(t, e, func(c inbox.Call) bool { return c.AnsweredAt != nil })
	if len(rec.Branches) != 1 || rec.Branches[0].User != "bob" || rec.Remote != "alice" {
		t.Fatalf("rang %+v (the calling phone must not ring)", rec.Branches)
	}
}

// TestVoicemailRequire: when voicemail answers (it is the UAS then), an
// extension the caller requires and it lacks gets 420 with Unsupported;
// 100rel needs nothing of it.
func TestVoicemailRequire(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.RingTime = 100 * time.Millisecond })
	numberWith(t, e, "alice") // no phone: straight to voicemail
	carrier := newTrunkPeer(t, e)
	carrier.send(e, "INVITE sip:"+testNumber+"@"+e.addr.String()+" SIP/2.0\r\n"+carrier.via()+"\r\n"+
		"From: <sip:+15550001111@carrier.example>;tag=vr1\r\nTo: <sip:"+testNumber+"@127.0.0.1>\r\nCall-ID: vm-require\r\n"+
		"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nRequire: 100rel, foo\r\nContact: <sip:c@"+carrier.local+">\r\nContent-Length: 0\r\n\r\n")
	res := carrier.final("vm-require", 5*time.Second)
	if statusCode(res) != 420 || headerValue(res, "Unsupported") != "foo" {
		t.Fatalf("want 420 with Unsupported: foo, got %q", res)
	}
}

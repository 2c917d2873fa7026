package sip

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// TestForkFirstAnswerWins: three members ring; bob answers; alice and carol
// get CANCEL with the Reason header; ACK and BYE pass the proxy; the
// history says so. Devices on UDP and TCP.
func TestForkFirstAnswerWins(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob", "carol")
	alice, bob, carol := newDevice(t, e, "alice", "udp"), newDevice(t, e, "bob", "tcp"), newDevice(t, e, "carol", "udp")
	car := newCarrier(t, e)
	if _, err := e.inbox.AddContacts([]inbox.Contact{{Name: "Grace Hopper", Phones: []string{"+1 555 000 9999"}}}); err != nil {
		t.Fatal(err)
	}

	type result struct {
		s   *sipgo.DialogClientSession
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := car.call(e, "15551230001")
		if err == nil {
			err = s.WaitAnswer(context.Background(), sipgo.AnswerOptions{})
		}
		done <- result{s, err}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.log.String())
		}
	})
	branches := map[string]string{} // our Via branch: whose INVITE
	for _, d := range []*device{alice, bob, carol} {
		inv := recv(t, d.invites, d.user+"'s INVITE")
		if inv.RecordRoute() == nil || inv.MaxForwards().Val() != 69 {
			t.Fatalf("%s's INVITE lacks Record-Route or a decremented Max-Forwards:\n%s", d.user, inv)
		}
		// The branches share the rest of the caller's INVITE; each has its
		// own Request-URI, and our Via on top, for its transport, with a
		// branch of its own, above the carrier's.
		vias := inv.GetHeaders("Via")
		top, ok := inv.Via(), len(vias) == 2
		branch := top.Params.GetOr("branch", "")
		if !ok || inv.Recipient.User != d.user || !strings.EqualFold(top.Transport, map[bool]string{true: "TCP", false: "UDP"}[d == bob]) ||
			!strings.HasPrefix(branch, branchPrefix) || branches[branch] != "" || vias[1].(*sip.ViaHeader).Params.GetOr("branch", "") == branch {
			t.Fatalf("%s's INVITE: Request-URI or Vias not its own (branch %q also %q's):\n%s", d.user, branch, branches[branch], inv)
		}
		branches[branch] = d.user
		if inv.From().DisplayName != "Grace Hopper" {
			t.Fatalf("%s's phone shows %q, want the address book's name", d.user, inv.From().DisplayName)
		}
	}
	bob.answer <- 200
	r := recv(t, done, "the answer")
	if r.err != nil {
		t.Fatalf("carrier: %v", r.err)
	}
	for _, d := range []*device{alice, carol} {
		c := recv(t, d.cancels, d.user+"'s CANCEL")
		if h := c.GetHeader("Reason"); h == nil || h.Value() != reasonElsewhere {
			t.Fatalf("%s's CANCEL Reason: %v", d.user, h)
		}
	}
	if err := r.s.Ack(context.Background()); err != nil {
		t.Fatal(err)
	}
	recv(t, bob.acks, "bob's ACK")
	if err := r.s.Bye(context.Background()); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	recv(t, bob.byes, "bob's BYE")
	c := lastCall(t, e, func(c inbox.Call) bool { return c.EndedAt != nil })
	o := outcomes(c)
	if c.Disposition != inbox.Answered || c.AnsweredBy == nil || c.AnsweredBy.User != "bob" || c.Direction != "inbound" ||
		o["bob"] != inbox.BranchAnswered || o["alice"] != inbox.BranchCancelledElsewhere || o["carol"] != inbox.BranchCancelledElsewhere {
		t.Fatalf("history: %+v", c)
	}
	e.noPanics()
}

// TestForkCallerCancels: the caller hangs up while ringing; every branch
// gets a CANCEL (without the "elsewhere" Reason) and the call is missed.
func TestForkCallerCancels(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	alice, bob := newDevice(t, e, "alice", "udp"), newDevice(t, e, "bob", "udp")
	car := newCarrier(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		s, err := car.call(e, testNumber)
		if err == nil {
			err = s.WaitAnswer(ctx, sipgo.AnswerOptions{})
		}
		errc <- err
	}()
	recv(t, alice.invites, "alice's INVITE")
	recv(t, bob.invites, "bob's INVITE")
	// Both ring (their 180s have reached the proxy once the caller sees one).
	cancel()
	if err := recv(t, errc, "the caller's end"); err == nil {
		t.Fatal("call answered")
	}
	for _, d := range []*device{alice, bob} {
		c := recv(t, d.cancels, d.user+"'s CANCEL")
		if c.GetHeader("Reason") != nil {
			t.Fatalf("caller's cancel carries %v", c.GetHeader("Reason"))
		}
	}
	c := lastCall(t, e, func(c inbox.Call) bool { return c.EndedAt != nil })
	o := outcomes(c)
	if c.Disposition != inbox.Missed || o["alice"] != inbox.BranchCallerCancelled || o["bob"] != inbox.BranchCallerCancelled {
		t.Fatalf("history: %+v", c)
	}
}

// TestForkStepsAndDecline: 12 members on Business: exactly 10 ring first;
// when all 10 decline, the remaining 2 ring at once; nobody answers → 480.
func TestForkStepsAndDecline(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.RingTime = 5 * time.Second })
	if err := e.dir.SetPlan("", acl.PlanBusiness); err != nil {
		t.Fatal(err)
	}
	var users []string
	for i := 0; i < 12; i++ {
		users = append(users, fmt.Sprintf("m%02d", i))
	}
	numberWith(t, e, users...)
	if err := e.dir.SetNumberDecline("", testNumber, acl.DeclinePersonal); err != nil {
		t.Fatal(err)
	}
	var devs []*device
	for _, u := range users {
		devs = append(devs, newDevice(t, e, u, "udp"))
	}
	car := newCarrier(t, e)
	errc := make(chan error, 1)
	go func() {
		s, err := car.call(e, testNumber)
		if err == nil {
			err = s.WaitAnswer(context.Background(), sipgo.AnswerOptions{})
		}
		errc <- err
	}()
	for i := 0; i < 10; i++ {
		recv(t, devs[i].invites, users[i]+"'s INVITE")
	}
	select {
	case <-devs[10].invites:
		t.Fatal("an 11th person rang in the first step")
	default:
	}
	for i := 0; i < 10; i++ {
		devs[i].answer <- 603
	}
	recv(t, devs[10].invites, "step 2 INVITE")
	recv(t, devs[11].invites, "step 2 INVITE")
	devs[10].answer <- 486
	devs[11].answer <- 603
	// Then voicemail would answer; this INVITE carries no SDP offer, so it
	// cannot: 488.
	if err := recv(t, errc, "the final answer"); err == nil || !strings.Contains(err.Error(), "488") {
		t.Fatalf("want a failure, got %v", err)
	}
	c := lastCall(t, e, func(c inbox.Call) bool { return c.EndedAt != nil })
	if len(c.Branches) != 12 || c.Disposition != inbox.Missed || c.Branches[10].Step != 1 || c.Branches[0].Outcome != inbox.BranchDeclined || c.Branches[10].Outcome != inbox.BranchBusy {
		t.Fatalf("history: %+v", c)
	}
}

// TestForkRingTimeoutNextStep: a step that nobody answers ends after its
// ring time, its ringing phones get CANCEL (no "elsewhere" Reason: it was a
// missed ring), a phone that never answers at all does not hold the call
// up, and the next step's answer wins.
func TestForkRingTimeoutNextStep(t *testing.T) {
	e := newManualEnv(t, nil)
	numberWith(t, e, "alice", "bob", "carol")
	// alice's phone is deaf: its binding points at a socket that reads nothing.
	deaf, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer deaf.Close()
	e.loc.Apply("alice", location.Update{CallID: "deaf", CSeq: 1, Source: deaf.LocalAddr().String(), Transport: "udp",
		Contacts: []location.Contact{{URI: "sip:alice@" + deaf.LocalAddr().String(), Expires: time.Hour}}})
	bob, carol := newDevice(t, e, "bob", "udp"), newDevice(t, e, "carol", "udp")
	st1, _ := acl.ParseStep("alice,bob:5")
	st2, _ := acl.ParseStep("carol:5")
	if err := e.dir.SetFlow("", testNumber, []acl.Step{st1, st2}, acl.ThenVoicemail); err != nil {
		t.Fatal(err)
	}
	car := newCarrier(t, e)
	done := make(chan error, 1)
	go func() {
		s, err := car.call(e, testNumber)
		if err == nil {
			err = s.WaitAnswer(context.Background(), sipgo.AnswerOptions{})
			if err == nil {
				s.Ack(context.Background())
				s.Bye(context.Background())
			}
		}
		done <- err
	}()
	recv(t, bob.invites, "bob's INVITE")
	e.clock.awaitTimer(t, 5*time.Second) // step 1's ring time
	e.clock.Advance(5 * time.Second)
	c := recv(t, bob.cancels, "bob's CANCEL at the end of step 1 (5 s)")
	if c.GetHeader("Reason") != nil {
		t.Fatalf("a missed ring carries %v", c.GetHeader("Reason"))
	}
	recv(t, carol.invites, "carol's INVITE in step 2")
	carol.answer <- 200
	if err := recv(t, done, "the call"); err != nil {
		t.Fatal(err)
	}
	rec := lastCall(t, e, func(c inbox.Call) bool {
		return c.EndedAt != nil && !strings.Contains(fmt.Sprint(outcomes(c)), "ringing")
	})
	o := outcomes(rec)
	if rec.AnsweredBy == nil || rec.AnsweredBy.User != "carol" || o["bob"] != inbox.BranchNoAnswer || o["alice"] == inbox.BranchRinging || o["alice"] == "" {
		t.Fatalf("history: %+v", rec)
	}
}

// TestForkCancelAfterLateProvisional: a phone that had not sent anything
// when another answered is cancelled as soon as its 180 arrives (RFC 3261
// §9.1), with the "elsewhere" Reason.
func TestForkCancelAfterLateProvisional(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	hold := make(chan struct{})
	alice := newDevice(t, e, "alice", "udp", func(d *device) { d.hold = hold })
	bob := newDevice(t, e, "bob", "udp")
	car := newCarrier(t, e)
	done := make(chan error, 1)
	go func() {
		s, err := car.call(e, testNumber)
		if err == nil {
			if err = s.WaitAnswer(context.Background(), sipgo.AnswerOptions{}); err == nil {
				err = s.Ack(context.Background())
			}
		}
		done <- err
	}()
	recv(t, alice.invites, "alice's INVITE")
	recv(t, bob.invites, "bob's INVITE")
	bob.answer <- 200
	if err := recv(t, done, "the answer"); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-alice.cancels:
		t.Fatalf("CANCEL before any provisional:\n%s", c)
	default:
	}
	close(hold)
	c := recv(t, alice.cancels, "alice's CANCEL after her 180")
	if h := c.GetHeader("Reason"); h == nil || h.Value() != reasonElsewhere {
		t.Fatalf("Reason: %v", h)
	}
}

// TestForkTimerC: a call that rings on and on is ended by Timer C: every
// branch gets CANCEL and the caller a final answer (480 with the hangup
// flow).
func TestForkTimerC(t *testing.T) {
	e := newManualEnv(t, func(s *Server) { s.TimerC = 30 * time.Second })
	numberWith(t, e, "alice")
	alice := newDevice(t, e, "alice", "udp")
	st, _ := acl.ParseStep("alice:60")
	if err := e.dir.SetFlow("", testNumber, []acl.Step{st}, acl.ThenHangup); err != nil {
		t.Fatal(err)
	}
	car := newCarrier(t, e)
	errc := make(chan error, 1)
	go func() {
		s, err := car.call(e, testNumber)
		if err == nil {
			err = s.WaitAnswer(context.Background(), sipgo.AnswerOptions{})
		}
		errc <- err
	}()
	recv(t, alice.invites, "alice's INVITE")
	e.clock.awaitTimer(t, 30*time.Second)
	e.clock.Advance(30 * time.Second) // Timer C; the step would ring 60 s
	recv(t, alice.cancels, "alice's CANCEL from Timer C")
	if err := recv(t, errc, "the caller's answer"); err == nil || !strings.Contains(err.Error(), "480") {
		t.Fatalf("want 480, got %v", err)
	}
	c := lastCall(t, e, func(c inbox.Call) bool { return c.EndedAt != nil && outcomes(c)["alice"] != inbox.BranchRinging })
	if c.Disposition != inbox.Missed || outcomes(c)["alice"] != inbox.BranchNoAnswer {
		t.Fatalf("history: %+v", c)
	}
}

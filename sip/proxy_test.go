package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

const testNumber = "+15551230001"

// device is a sipgo user agent standing in for a desk phone.
type device struct {
	t        testing.TB
	user     string
	addr     netip.AddrPort
	invites  chan *sip.Request
	cancels  chan *sip.Request
	acks     chan *sip.Request
	byes     chan *sip.Request
	notifies chan *sip.Request
	messages chan *sip.Request
	ua       *sipgo.UserAgent
	// textAnswer is the status a MESSAGE gets (0: 200).
	textAnswer atomic.Int32
	// answer, when it yields a code, is the final answer to an INVITE
	// (after 180); closed or nil: ring until cancelled.
	answer chan int
	// hold, when set, delays the 180 until it is closed.
	hold chan struct{}
}

func newDevice(t testing.TB, e *env, user, transport string, opts ...func(*device)) *device {
	t.Helper()
	d := &device{t: t, user: user, invites: make(chan *sip.Request, 10), cancels: make(chan *sip.Request, 10),
		acks: make(chan *sip.Request, 10), byes: make(chan *sip.Request, 10), notifies: make(chan *sip.Request, 10),
		messages: make(chan *sip.Request, 10), answer: make(chan int, 1)}
	for _, o := range opts {
		o(d)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("device-" + user))
	if err != nil {
		t.Fatal(err)
	}
	d.ua = ua
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		d.invites <- req
		cancelled := make(chan struct{})
		tx.OnCancel(func(c *sip.Request) {
			d.cancels <- c
			close(cancelled)
		})
		if d.hold != nil {
			<-d.hold
		}
		ringing := sip.NewResponseFromRequest(req, 180, "Ringing", nil)
		tag := ringing.To().Params.GetOr("tag", "")
		tx.Respond(ringing)
		select {
		case code := <-d.answer:
			res := sip.NewResponseFromRequest(req, code, map[bool]string{true: "OK", false: "Decline"}[code == 200], nil)
			res.To().Params.Add("tag", tag)
			if code == 200 {
				// The device's address as the INVITE names it (d.addr is
				// set after the server starts: not read here).
				res.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s@%s:%d;transport=%s>", user, req.Recipient.Host, req.Recipient.Port, strings.ToLower(transport))))
			}
			tx.Respond(res)
		case <-cancelled:
		case <-tx.Done():
		}
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { d.acks <- req })
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		d.notifies <- req
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		d.messages <- req
		code, reason := 200, "OK"
		if c := d.textAnswer.Load(); c != 0 {
			code, reason = int(c), "Nope"
		}
		tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		d.byes <- req
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	switch transport {
	case "udp":
		d.addr = serveUDP(t, srv).LocalAddr().(*net.UDPAddr).AddrPort()
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		d.addr = ln.Addr().(*net.TCPAddr).AddrPort()
		go srv.ServeTCP(ln)
		t.Cleanup(func() { ln.Close() })
	}
	t.Cleanup(func() { ua.Close() })
	// Registered as the registrar would have stored it.
	_, err = e.loc.Apply(user, location.Update{CallID: "reg-" + user + d.addr.String(), CSeq: 1, Source: d.addr.String(), Transport: transport,
		UserAgent: "device-" + user, Contacts: []location.Contact{{URI: fmt.Sprintf("sip:%s@%s", user, d.addr), Expires: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// readyConn reports when sipgo starts reading it: by then the listener is
// in sipgo's connection pool, so clients can send from its address.
type readyConn struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}
}

func (c *readyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	return c.PacketConn.ReadFrom(b)
}

// serveUDP serves srv on a fresh 127.0.0.1 port and returns once it reads.
func serveUDP(t testing.TB, srv *sipgo.Server) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &readyConn{PacketConn: pc, ready: make(chan struct{})}
	go srv.ServeUDP(rc)
	recv(t, rc.ready, "the UDP listener")
	t.Cleanup(func() { pc.Close() })
	return pc
}

// carrier is a sipgo user agent on a trunk's trusted address.
type carrier struct {
	t      *testing.T
	addr   netip.AddrPort
	dialog *sipgo.DialogClientCache
	client *sipgo.Client
}

func newCarrier(t *testing.T, e *env) *carrier {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("carrier"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	pc := serveUDP(t, srv)
	c := &carrier{t: t, addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	client, err := sipgo.NewClient(ua, sipgo.WithClientAddr(c.addr.String()), sipgo.WithClientConnectionAddr(c.addr.String()))
	if err != nil {
		t.Fatal(err)
	}
	c.client = client
	c.dialog = sipgo.NewDialogClientCache(client, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "carrier", Host: "127.0.0.1", Port: int(c.addr.Port())}})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) { c.dialog.ReadBye(req, tx) })
	t.Cleanup(func() { ua.Close() })
	if err := e.dir.AddTrunk("", "carrier", c.addr.String(), []string{c.addr.String()}); err != nil {
		t.Fatal(err)
	}
	return c
}

// call sends an INVITE from +15550009999 to the number.
func (c *carrier) call(e *env, to string) (*sipgo.DialogClientSession, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "+15550009999", Host: "carrier.example"}, Params: sip.NewParams()}
	from.Params.Add("tag", fmt.Sprint(time.Now().UnixNano()))
	return c.dialog.Invite(ctx, sip.Uri{Scheme: "sip", User: to, Host: "127.0.0.1", Port: int(e.addr.Port())}, nil, &from)
}

// numberWith adds the number and its members (all registered users).
func numberWith(t testing.TB, e *env, users ...string) {
	t.Helper()
	if _, err := e.dir.AddNumber("", testNumber, "Support"); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if _, ok := e.dir.Snapshot().User(u); !ok {
			if err := e.dir.AddUser("", acl.NewUser{Name: u, Password: "secret-" + u}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.dir.AddMember("", testNumber, u, acl.RoleMember); err != nil {
			t.Fatal(err)
		}
	}
}

func recv[T any](t testing.TB, ch chan T, what string) T {
	t.Helper()
	return recvWithin(t, ch, what, 5*time.Second)
}

func recvWithin[T any](t testing.TB, ch chan T, what string, d time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// lastCall returns the newest call record once until holds for it,
// awaiting each record write (at most 5 s).
func lastCall(t *testing.T, e *env, until func(inbox.Call) bool) inbox.Call {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		calls, err := e.inbox.Calls([]string{testNumber}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) == 1 && until(calls[0]) {
			return calls[0]
		}
		select {
		case <-e.saved:
		case <-deadline:
			t.Fatalf("call record not as expected: %+v", calls)
		}
	}
}

func outcomes(c inbox.Call) map[string]string {
	out := map[string]string{}
	for _, b := range c.Branches {
		out[b.User] = b.Outcome
	}
	return out
}

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

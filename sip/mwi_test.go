package sip

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/inbox"
)

func leaveVoicemail(t *testing.T, e *env) *inbox.Voicemail {
	t.Helper()
	v := &inbox.Voicemail{ID: e.inbox.NewID(), Number: testNumber, From: "+15550009999", ReceivedAt: e.clock.Now(), DurationS: 3, Codec: "PCMU"}
	if err := e.inbox.SaveVoicemail(v, make([]byte, 48000), nil); err != nil {
		t.Fatal(err)
	}
	e.srv.NotifyMWI(testNumber)
	return v
}

func TestMWISubscribeAndNotify(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	alice := newDevice(t, e, "alice", "udp") // registered, subscribes below
	bob := newDevice(t, e, "bob", "udp")     // registered, never subscribes

	// alice's phone subscribes from its own address (sipgo client on the
	// device's listener), answering the 407.
	client, _ := sipgo.NewClient(alice.ua, sipgo.WithClientAddr(alice.addr.String()), sipgo.WithClientConnectionAddr(alice.addr.String()))
	req := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: int(e.addr.Port())})
	aor := sip.Uri{Scheme: "sip", User: "alice", Host: testRealm}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", "sub1")
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:alice@%s>", alice.addr)))
	req.AppendHeader(sip.NewHeader("Event", "message-summary"))
	req.AppendHeader(sip.NewHeader("Expires", "600"))
	req.SetDestination(e.addr.String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := client.Do(ctx, req)
	if err == nil && res.StatusCode == 407 {
		res, err = client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "alice", Password: "secret-alice"})
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %v %v", res, err)
	}
	n := recv(t, alice.notifies, "the first NOTIFY")
	if body := string(n.Body()); !strings.Contains(body, "Messages-Waiting: no") || !strings.Contains(body, "Voice-Message: 0/0") ||
		n.GetHeader("Event").Value() != "message-summary" || !strings.HasPrefix(n.GetHeader("Subscription-State").Value(), "active") {
		t.Fatalf("first NOTIFY:\n%s", n)
	}

	v := leaveVoicemail(t, e)
	n = recv(t, alice.notifies, "alice's NOTIFY after a voicemail")
	if body := string(n.Body()); !strings.Contains(body, "Messages-Waiting: yes") || !strings.Contains(body, "Voice-Message: 1/0") {
		t.Fatalf("NOTIFY:\n%s", n)
	}
	u := recv(t, bob.notifies, "bob's unsolicited NOTIFY")
	if !strings.Contains(string(u.Body()), "Voice-Message: 1/0") {
		t.Fatalf("unsolicited NOTIFY:\n%s", u)
	}
	// Heard by anyone: no longer new for the team.
	e.inbox.MarkHeard(v.ID, "bob", e.clock.Now())
	e.srv.NotifyMWI(testNumber)
	n = recv(t, alice.notifies, "alice's NOTIFY after bob heard it")
	if !strings.Contains(string(n.Body()), "Voice-Message: 0/1") || !strings.Contains(string(n.Body()), "Messages-Waiting: no") {
		t.Fatalf("NOTIFY:\n%s", n)
	}
	e.noPanics()
}

func TestMWIBadEvent(t *testing.T) {
	e := newEnv(t, nil)
	p := newPhone(t, e, "UDP", "alice", "secret-alice")
	req := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: int(e.addr.Port())})
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.AppendHeader(sip.NewHeader("Contact", "<sip:alice@127.0.0.1:9>"))
	req.SetDestination(e.addr.String())
	res := p.do(req)
	if res.StatusCode == 407 {
		res, _ = p.c.DoDigestAuth(context.Background(), req, res, sipgo.DigestAuth{Username: "alice", Password: "secret-alice"})
	}
	if res.StatusCode != 489 {
		t.Fatalf("want 489, got %s", res.StartLine())
	}
}

// subscriber is a phone's message-waiting side: a sipgo UA on its own UDP
// socket (one device) that subscribes from it and answers NOTIFYs with
// answer (0: never answers).
type subscriber struct {
	t      *testing.T
	addr   netip.AddrPort
	client *sipgo.Client
	cseq   uint32

	datagrams atomic.Int64 // NOTIFY datagrams received, retransmissions included

	mu       sync.Mutex
	branches map[string]bool // NOTIFY transactions
	notifies chan *sip.Request
}

// notifyCounter counts the NOTIFY datagrams its reader (sipgo) reads.
type notifyCounter struct {
	net.PacketConn
	n     *atomic.Int64
	once  sync.Once
	ready chan struct{}
}

func (c *notifyCounter) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err == nil && bytes.HasPrefix(b[:n], []byte("NOTIFY ")) {
		c.n.Add(1)
	}
	return n, addr, err
}

func newSubscriber(t *testing.T, answer int) *subscriber {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("subscriber"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	s := &subscriber{t: t, branches: map[string]bool{}, notifies: make(chan *sip.Request, 100)}
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		s.mu.Lock()
		branch := req.Via().Params.GetOr("branch", "")
		first := !s.branches[branch]
		s.branches[branch] = true
		s.mu.Unlock()
		if first {
			select {
			case s.notifies <- req:
			default:
			}
		}
		if answer != 0 {
			tx.Respond(sip.NewResponseFromRequest(req, answer, "Whatever", nil))
		}
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	counter := &notifyCounter{PacketConn: pc, n: &s.datagrams, ready: make(chan struct{})}
	go srv.ServeUDP(counter)
	recv(t, counter.ready, "the subscriber's UDP listener")
	s.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if s.client, err = sipgo.NewClient(ua, sipgo.WithClientAddr(s.addr.String()), sipgo.WithClientConnectionAddr(s.addr.String())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	return s
}

// subscribe sends a new SUBSCRIBE as user (Call-ID callID, From tag
// callID) and returns the final response, after the digest challenge.
func (s *subscriber) subscribe(e *env, user, callID string, expires int) *sip.Response {
	s.t.Helper()
	build := func() *sip.Request {
		req := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: int(e.addr.Port())})
		aor := sip.Uri{Scheme: "sip", User: user, Host: testRealm}
		from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
		from.Params.Add("tag", callID)
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
		id := sip.CallIDHeader(callID)
		req.AppendHeader(&id)
		req.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s@%s>", user, s.addr)))
		req.AppendHeader(sip.NewHeader("Event", "message-summary"))
		req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
		req.SetDestination(e.addr.String())
		return req
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := build()
	res, err := s.client.Do(ctx, req)
	if err == nil && res.StatusCode == 407 {
		res, err = s.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: "secret-" + user})
	}
	if err != nil {
		s.t.Fatalf("SUBSCRIBE %s: %v", callID, err)
	}
	return res
}

// refresh sends an in-dialog SUBSCRIBE in the subscription ok (the 200 to
// a subscribe) and returns the final response.
func (s *subscriber) refresh(e *env, ok *sip.Response, expires int) *sip.Response {
	s.t.Helper()
	req := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(e.addr.Port())})
	req.AppendHeader(sip.HeaderClone(ok.From()))
	req.AppendHeader(sip.HeaderClone(ok.To()))
	req.AppendHeader(sip.HeaderClone(ok.CallID()))
	s.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 100 + s.cseq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s@%s>", ok.From().Address.User, s.addr)))
	req.AppendHeader(sip.NewHeader("Event", "message-summary"))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	req.SetDestination(e.addr.String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := s.client.Do(ctx, req)
	if err != nil {
		s.t.Fatalf("refresh: %v", err)
	}
	return res
}

func wantStatus(t *testing.T, res *sip.Response, code int, what string) {
	t.Helper()
	if res.StatusCode != code {
		t.Fatalf("%s: want %d, got %s", what, code, res.StartLine())
	}
}

// TestMWISubscriptionCaps: one user's subscriptions are capped per device
// (its source address) and in all; over a cap the SUBSCRIBE gets 403 and a
// security line; refreshes do not count; an ended or expired subscription
// frees its place (issue 14, finding 9: one credential held 3,000).
func TestMWISubscriptionCaps(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.SubscriptionsPerDevice = 2; s.SubscriptionsPerUser = 3 })
	numberWith(t, e, "alice", "bob")
	a, b, c := newSubscriber(t, 200), newSubscriber(t, 200), newSubscriber(t, 200)

	first := a.subscribe(e, "alice", "cap-a1", 600)
	wantStatus(t, first, 200, "alice's first from a")
	wantStatus(t, a.subscribe(e, "alice", "cap-a2", 600), 200, "alice's second from a")
	res := a.subscribe(e, "alice", "cap-a3", 600)
	wantStatus(t, res, 403, "alice's third from a (device cap)")
	wantStatus(t, b.subscribe(e, "alice", "cap-b1", 600), 200, "alice's first from b")
	wantStatus(t, c.subscribe(e, "alice", "cap-c1", 600), 403, "alice's fourth (user cap)")
	wantStatus(t, c.subscribe(e, "bob", "cap-c2", 600), 200, "bob's first from c")
	// One line for the two refusals from 127.0.0.1: rate-limited.
	if l := e.log.String(); !strings.Contains(l, "msg=security event=subscribe_cap src=127.0.0.1 user=alice limit=device") ||
		strings.Count(l, "event=subscribe_cap") != 1 {
		t.Errorf("want one subscribe_cap line:\n%s", l)
	}

	// A refresh at the cap is no new subscription.
	wantStatus(t, a.refresh(e, first, 600), 200, "refresh at the cap")
	// Ended (Expires: 0), it frees its place.
	wantStatus(t, a.refresh(e, first, 0), 200, "unsubscribe")
	wantStatus(t, a.subscribe(e, "alice", "cap-a4", 600), 200, "alice from a after one ended")
	wantStatus(t, c.subscribe(e, "alice", "cap-c3", 600), 403, "alice's fourth again")
	// Expired, they all do.
	e.clock.Advance(601 * time.Second)
	wantStatus(t, c.subscribe(e, "alice", "cap-c4", 600), 200, "alice's after the others expired")
	e.noPanics()
}

// TestMWIExpiryClamp: a longer Expires is lowered to 3600 s in the 200 and
// in the NOTIFY's Subscription-State, on subscribe and on refresh; a
// shorter one than the minimum gets 423 with Min-Expires.
func TestMWIExpiryClamp(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice")
	a := newSubscriber(t, 200)
	ok := a.subscribe(e, "alice", "clamp-1", 7200)
	if ok.StatusCode != 200 || ok.GetHeader("Expires") == nil || ok.GetHeader("Expires").Value() != "3600" {
		t.Fatalf("SUBSCRIBE for 7200 s: %s", ok)
	}
	n := recv(t, a.notifies, "the first NOTIFY")
	if st := n.GetHeader("Subscription-State").Value(); st != "active;expires=3600" {
		t.Fatalf("Subscription-State %q, want active;expires=3600", st)
	}
	res := a.refresh(e, ok, 86400)
	if res.StatusCode != 200 || res.GetHeader("Expires").Value() != "3600" {
		t.Fatalf("refresh for 86400 s: %s", res)
	}
	n = recv(t, a.notifies, "the NOTIFY after the refresh")
	if st := n.GetHeader("Subscription-State").Value(); st != "active;expires=3600" {
		t.Fatalf("Subscription-State %q after the refresh", st)
	}
	res = a.subscribe(e, "alice", "clamp-2", 30)
	if res.StatusCode != 423 || res.GetHeader("Min-Expires") == nil || res.GetHeader("Min-Expires").Value() != "60" {
		t.Fatalf("SUBSCRIBE for 30 s: %s", res)
	}
	e.noPanics()
}

// TestMWINotifiesInFlight: a subscriber that never answers (a spoofed
// source) holds four subscriptions and the number's voicemail changes 50
// times: at most two NOTIFY transactions are in flight to it at once, the
// 50 changes fold into the NOTIFYs already waiting, each subscription ends
// when its NOTIFY goes unanswered for NotifyTimeout, and then nothing more
// is sent there (issue 14, finding 9: 7,283 NOTIFYs in 5 s).
func TestMWINotifiesInFlight(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.NotifyTimeout = time.Second })
	numberWith(t, e, "alice")
	var mu sync.Mutex
	most := 0
	ended := make(chan *subscription, 10)
	e.srv.subs.mu.Lock()
	e.srv.subs.started = func(dest string, inFlight int) {
		mu.Lock()
		most = max(most, inFlight)
		mu.Unlock()
	}
	e.srv.subs.ended = func(sub *subscription) { ended <- sub }
	e.srv.subs.mu.Unlock()

	silent := newSubscriber(t, 0)
	for i := range 4 {
		wantStatus(t, silent.subscribe(e, "alice", fmt.Sprintf("silent-%d", i), 600), 200, "a subscription")
	}
	for range 50 {
		e.srv.NotifyMWI(testNumber)
	}
	for i := range 4 {
		recvWithin(t, ended, fmt.Sprintf("subscription %d ending", i), 10*time.Second)
	}
	// Nothing is left to send there: no subscription, nothing queued.
	e.srv.NotifyMWI(testNumber)
	for i := 0; ; i++ {
		e.srv.subs.mu.Lock()
		subs, queued := len(e.srv.subs.m), len(e.srv.subs.out)
		e.srv.subs.mu.Unlock()
		if subs == 0 && queued == 0 {
			break
		}
		if i == 1000 { // the last NOTIFY's goroutine leaves the queue after it ended the subscription
			t.Fatalf("%d subscriptions and %d NOTIFY queues left", subs, queued)
		}
		time.Sleep(2 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	silent.mu.Lock()
	defer silent.mu.Unlock()
	if most != 2 {
		t.Errorf("%d NOTIFY transactions in flight at most, want 2", most)
	}
	if len(silent.branches) != 4 {
		t.Errorf("%d NOTIFY transactions reached the subscriber, want 4 (one per subscription)", len(silent.branches))
	}
	// Over UDP each is sent at 0 and again at 0.5 s (T1) within the 1 s.
	if n := silent.datagrams.Load(); n > 4*3 {
		t.Errorf("%d NOTIFY datagrams for 4 transactions", n)
	}
	if n := strings.Count(e.log.String(), "event=notify_unanswered"); n != 1 {
		t.Errorf("%d notify_unanswered lines, want 1 (rate-limited):\n%s", n, e.log)
	}
	e.noPanics()
}

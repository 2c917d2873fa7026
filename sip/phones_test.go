package sip

// Test phones and carriers: sipgo user agents on loopback that ring,
// answer, take texts and call in as a trunk.

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
	// reliable sends the 180 reliably (RFC 3262: Require: 100rel, RSeq).
	reliable bool
	// final, when set, adjusts the final answer before it goes.
	final func(res *sip.Response)
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
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) { d.ring(req, tx, transport) })
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

// ring is the device's answer to an INVITE: 180 (after hold, if set), then
// what answer says, or nothing once the caller cancels.
func (d *device) ring(req *sip.Request, tx sip.ServerTransaction, transport string) {
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
	if d.reliable {
		ringing.AppendHeader(sip.NewHeader("Require", "100rel"))
		ringing.AppendHeader(sip.NewHeader("RSeq", "1"))
	}
	tx.Respond(ringing)
	select {
	case code := <-d.answer:
		res := sip.NewResponseFromRequest(req, code, map[bool]string{true: "OK", false: "Decline"}[code == 200], nil)
		res.To().Params.Add("tag", tag)
		if code == 200 {
			// The device's address as the INVITE names it (d.addr is set
			// after the server starts: not read here).
			res.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s@%s:%d;transport=%s>", d.user, req.Recipient.Host, req.Recipient.Port, strings.ToLower(transport))))
		}
		if d.final != nil {
			d.final(res)
		}
		tx.Respond(res)
	case <-cancelled:
	case <-tx.Done():
	}
}

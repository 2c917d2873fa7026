package sip

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
)

// memberPhone is a sipgo UA that places calls as a user, answering digest
// challenges.
type memberPhone struct {
	dialog *sipgo.DialogClientCache
}

func newMemberPhone(t *testing.T, e *env, user string) *memberPhone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("phone-" + user))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	pc := serveUDP(t, srv)
	addr := pc.LocalAddr().String()
	client, err := sipgo.NewClient(ua, sipgo.WithClientAddr(addr), sipgo.WithClientConnectionAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	return &memberPhone{dialog: sipgo.NewDialogClientCache(client, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port}})}
}

// call dials target as user and waits for the answer.
func (p *memberPhone) call(e *env, user, target string) (*sipgo.DialogClientSession, error) {
	ctx := context.Background()
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: testRealm}, Params: sip.NewParams()}
	from.Params.Add("tag", "m"+user)
	s, err := p.dialog.Invite(ctx, sip.Uri{Scheme: "sip", User: target, Host: "127.0.0.1", Port: int(e.addr.Port())}, nil, &from)
	if err != nil {
		return nil, err
	}
	return s, s.WaitAnswer(ctx, sipgo.AnswerOptions{Username: user, Password: "secret-" + user})
}

// TestOutboundAsSharedNumber: a member's call to an outside number is
// challenged, then leaves through the trunk with the shared number as
// caller ID and no credentials; a non-member is refused.
func TestOutboundAsSharedNumber(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice")
	far := newDevice(t, e, "far", "udp") // the carrier's side
	if err := e.dir.AddTrunk("", "carrier", far.addr.String(), []string{far.addr.String()}); err != nil {
		t.Fatal(err)
	}
	phone := newMemberPhone(t, e, "alice")
	far.answer <- 200
	s, err := phone.call(e, "alice", "15550007777")
	if err != nil {
		t.Fatalf("outbound call: %v", err)
	}
	inv := recv(t, far.invites, "the trunk's INVITE")
	pai := inv.GetHeader("P-Asserted-Identity")
	if inv.From().Address.User != testNumber || pai == nil || !strings.Contains(pai.Value(), testNumber) ||
		inv.GetHeader("Proxy-Authorization") != nil || inv.Recipient.User != "+15550007777" {
		t.Fatalf("INVITE at the trunk:\n%s", inv)
	}
	if err := s.Ack(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Bye(context.Background()); err != nil {
		t.Fatal(err)
	}
	recv(t, far.byes, "the far end's BYE")
	c := lastCall(t, e, func(c inbox.Call) bool { return c.EndedAt != nil })
	if c.Direction != "outbound" || c.Member != "alice" || c.Remote != "+15550007777" || c.Disposition != inbox.Answered {
		t.Fatalf("history: %+v", c)
	}

	// bob is no member of any number: refused, nothing reaches the trunk.
	if err := e.dir.AddUser("", acl.NewUser{Name: "carl", Password: "secret-carl"}); err != nil {
		t.Fatal(err)
	}
	_, err = newMemberPhone(t, e, "carl").call(e, "carl", "+15550007777")
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("non-member: %v", err)
	}
	nothingIn(t, far.invites, "a non-member's call reached the trunk")
}

// TestUserToUserCall rings the callee's devices and records nothing in a
// shared inbox.
func TestUserToUserCall(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	bob := newDevice(t, e, "bob", "udp")
	bob.answer <- 200
	s, err := newMemberPhone(t, e, "alice").call(e, "alice", "bob")
	if err != nil {
		t.Fatal(err)
	}
	recv(t, bob.invites, "bob's INVITE")
	s.Ack(context.Background())
	if err := s.Bye(context.Background()); err != nil {
		t.Fatal(err)
	}
	recv(t, bob.byes, "bob's BYE")
	if calls, _ := e.inbox.Calls([]string{testNumber}, 10); len(calls) != 0 {
		t.Fatalf("a colleague's call landed in the inbox: %+v", calls)
	}
}

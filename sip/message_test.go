package sip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
)

const composingActive = `<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><contenttype>text/plain</contenttype><refresh>20</refresh></isComposing>`

// textRequest builds a MESSAGE from user@host to the server.
func newText(e *env, fromUser, fromHost, to, ctype, body string) *sip.Request {
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: to, Host: "127.0.0.1", Port: int(e.addr.Port())})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: fromUser, Host: fromHost}, Params: sip.NewParams()}
	from.Params.Add("tag", fmt.Sprint(time.Now().UnixNano()))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: to, Host: fromHost}, Params: sip.NewParams()})
	if ctype != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ctype))
	}
	req.SetBody([]byte(body))
	req.SetDestination(e.addr.String())
	return req
}

// do sends req and returns the final response, answering a 407 as
// user when given.
func do(t *testing.T, c *sipgo.Client, req *sip.Request, user string) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Do(ctx, req)
	if err == nil && res.StatusCode == 407 && user != "" {
		res, err = c.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: "secret-" + user})
	}
	if err != nil {
		t.Fatalf("%s: %v", req.Method, err)
	}
	return res
}

// phoneClient is a member's phone that sends requests from its own
// listener (a device registered for user).
func phoneClient(t *testing.T, d *device) *sipgo.Client {
	t.Helper()
	c, err := sipgo.NewClient(d.ua, sipgo.WithClientAddr(d.addr.String()), sipgo.WithClientConnectionAddr(d.addr.String()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nothingIn fails when ch holds a request already (what must not have
// come, checked after an event that would have followed it).
func nothingIn(t *testing.T, ch chan *sip.Request, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s:\n%s", what, r)
	default:
	}
}

// messageOf awaits the stored text until holds, after each status or
// delivery write.
func messageOf(t *testing.T, e *env, id string, until func(inbox.Message) bool) inbox.Message {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		m, err := e.inbox.Message(id)
		if err == nil && until(m) {
			return m
		}
		select {
		case <-e.texts:
		case <-deadline:
			t.Fatalf("message %s not as expected: %+v, %v", id, m, err)
		}
	}
}

// onlyText returns the number's one text.
func onlyText(t *testing.T, e *env) inbox.Message {
	t.Helper()
	items, err := e.inbox.Items(testNumber, 10)
	if err != nil || len(items) != 1 || items[0].Kind != inbox.KindMessage {
		t.Fatalf("the number's items: %+v, %v", items, err)
	}
	m, err := e.inbox.Message(items[0].Ref)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTextInbound: a carrier's text to the number is stored, answered 200
// and delivered to every device of every member (UDP and TCP); a device's
// refusal is recorded; the conversation is unread.
func TestTextInbound(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob", "carol") // carol has no device
	a1, a2 := newDevice(t, e, "alice", "udp"), newDevice(t, e, "alice", "tcp")
	b := newDevice(t, e, "bob", "udp", func(d *device) { d.textAnswer.Store(480) })
	car := newCarrier(t, e)
	if _, err := e.inbox.AddContacts([]inbox.Contact{{Name: "Grace Hopper", Phones: []string{"+15550009999"}}}); err != nil {
		t.Fatal(err)
	}
	res := do(t, car.client, newText(e, "+15550009999", "carrier.example", "15551230001", "text/plain;charset=UTF-8", "Is the shop open?"), "")
	if res.StatusCode != 200 {
		t.Fatalf("carrier's text: %d", res.StatusCode)
	}
	for _, d := range []*device{a1, a2, b} {
		m := recv(t, d.messages, d.user+"'s text")
		if string(m.Body()) != "Is the shop open?" || m.From().DisplayName != "Grace Hopper" || m.From().Address.User != "+15550009999" ||
			!strings.Contains(m.GetHeader("P-Called-Party-ID").Value(), testNumber) {
			t.Fatalf("%s got:\n%s", d.user, m)
		}
	}
	stored := onlyText(t, e)
	m := messageOf(t, e, stored.ID, func(m inbox.Message) bool { return len(m.Deliveries) == 3 })
	var got []string
	for _, d := range m.Deliveries {
		got = append(got, fmt.Sprintf("%s:%s:%d", d.User, d.Outcome, d.Status))
	}
	slices.Sort(got)
	if want := []string{"alice:delivered:200", "alice:delivered:200", "bob:failed:480"}; !slices.Equal(got, want) ||
		m.Direction != "inbound" || m.Party != "+15550009999" || m.Status != inbox.MsgReceived {
		t.Fatalf("stored text %+v, deliveries %v", m, got)
	}
	convs, _ := e.inbox.Conversations([]string{testNumber}, inbox.StateUnread, 0)
	if len(convs) != 1 || convs[0].LastSummary != "Is the shop open?" {
		t.Fatalf("conversations: %+v", convs)
	}
}

// failingTexts refuses to store texts.
type failingTexts struct{ notifyLog }

func (failingTexts) SaveMessage(*inbox.Message) error { return errors.New("disk full") }

func (failingTexts) SaveInbound(*inbox.Message) (inbox.Message, bool, error) {
	return inbox.Message{}, false, errors.New("disk full")
}

// TestTextNotStoredNotAccepted: when the text cannot be stored, the
// carrier gets 500 (and retries), and no device gets it.
func TestTextNotStoredNotAccepted(t *testing.T) {
	e := newEnv(t, nil)
	e.restart(func(s *Server) { s.texts = failingTexts{s.texts.(notifyLog)} })
	numberWith(t, e, "alice")
	a := newDevice(t, e, "alice", "udp")
	car := newCarrier(t, e)
	if res := do(t, car.client, newText(e, "+15550009999", "carrier.example", testNumber, "text/plain", "hello"), ""); res.StatusCode != 500 {
		t.Fatalf("unstored text answered %d", res.StatusCode)
	}
	nothingIn(t, a.messages, "an unstored text was delivered")
}

// TestTextBadInput: the right status for what is not a text, and nothing
// stored.
func TestTextBadInput(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice")
	car := newCarrier(t, e)
	for _, tc := range []struct {
		to, ctype, body string
		code            int
	}{
		{testNumber, "application/octet-stream", "\x00\x01", 415},
		{testNumber, "text/plain", "", 400},
		{testNumber, "text/plain;charset=ISO-8859-1", "caf\xe9", 415},
		{testNumber, "text/plain", "caf\xe9", 415},
		{testNumber, ctypeComposing, "<isComposing><state>bored</state></isComposing>", 400},
		{"+15559990000", "text/plain", "not our number", 404},
	} {
		res := do(t, car.client, newText(e, "+15550009999", "carrier.example", tc.to, tc.ctype, tc.body), "")
		if res.StatusCode != tc.code {
			t.Errorf("%s %q: %d, want %d", tc.ctype, tc.body, res.StatusCode, tc.code)
		}
		if tc.code == 415 && res.GetHeader("Accept") == nil {
			t.Errorf("415 without Accept")
		}
	}
	if items, _ := e.inbox.Items(testNumber, 10); len(items) != 0 {
		t.Fatalf("stored: %+v", items)
	}
	// Nobody else reaches a number's texts without proving who they are.
	ua, _ := sipgo.NewUA()
	t.Cleanup(func() { ua.Close() })
	stranger, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if res := do(t, stranger, newText(e, "+15550009999", "evil.example", testNumber, "text/plain", "hi"), ""); res.StatusCode != 407 {
		t.Fatalf("untrusted text: %d, want 407", res.StatusCode)
	}
}

// TestTextOutbound: a member's text to an outside number is challenged,
// leaves through the trunk as the shared number and is stored with the
// member; the trunk's refusal reaches the phone and the record; a
// non-member is refused and nothing reaches the trunk.
func TestTextOutbound(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice")
	far := newDevice(t, e, "far", "udp")
	if err := e.dir.AddTrunk("", "carrier", far.addr.String(), []string{far.addr.String()}); err != nil {
		t.Fatal(err)
	}
	alice := newDevice(t, e, "alice", "udp")
	phone := phoneClient(t, alice)
	res := do(t, phone, newText(e, "alice", testRealm, "15550007777", "text/plain", "On my way"), "alice")
	if res.StatusCode != 200 {
		t.Fatalf("alice's text: %d", res.StatusCode)
	}
	m := recv(t, far.messages, "the trunk's MESSAGE")
	pai := m.GetHeader("P-Asserted-Identity")
	if m.From().Address.User != testNumber || pai == nil || !strings.Contains(pai.Value(), testNumber) ||
		m.GetHeader("Proxy-Authorization") != nil || m.Recipient.User != "+15550007777" || string(m.Body()) != "On my way" {
		t.Fatalf("MESSAGE at the trunk:\n%s", m)
	}
	sent := onlyText(t, e)
	if sent.Direction != "outbound" || sent.Member != "alice" || sent.Party != "+15550007777" || sent.Status != inbox.MsgSent || sent.StatusCode != 200 {
		t.Fatalf("stored: %+v", sent)
	}
	convs, _ := e.inbox.Conversations([]string{testNumber}, "", 0)
	if len(convs) != 1 || convs[0].State != inbox.StateOpen {
		t.Fatalf("an outbound text opens a conversation, not an unread one: %+v", convs)
	}

	// The trunk refuses: the phone hears it, the record says failed.
	far.textAnswer.Store(503)
	if res := do(t, phone, newText(e, "alice", testRealm, "+15550007777", "text/plain", "again"), "alice"); res.StatusCode != 503 {
		t.Fatalf("refused text: %d", res.StatusCode)
	}
	recv(t, far.messages, "the second MESSAGE")
	items, _ := e.inbox.Items(testNumber, 1)
	failed := messageOf(t, e, items[0].Ref, func(m inbox.Message) bool { return m.Status != inbox.MsgSending })
	if failed.Status != inbox.MsgFailed || failed.StatusCode != 503 {
		t.Fatalf("refused text stored as %+v", failed)
	}

	// carl is a user but no member of any number.
	if err := e.dir.AddUser("", acl.NewUser{Name: "carl", Password: "secret-carl"}); err != nil {
		t.Fatal(err)
	}
	carl := phoneClient(t, newDevice(t, e, "carl", "udp"))
	if res := do(t, carl, newText(e, "carl", testRealm, "+15550007777", "text/plain", "free texts?"), "carl"); res.StatusCode != 403 {
		t.Fatalf("non-member's text: %d, want 403", res.StatusCode)
	}
	// A wrong password never gets through either.
	ua, _ := sipgo.NewUA()
	t.Cleanup(func() { ua.Close() })
	thief, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := newText(e, "alice", testRealm, "+15550007777", "text/plain", "toll fraud")
	if res, err := thief.Do(ctx, req); err == nil && res.StatusCode == 407 {
		res, err = thief.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "alice", Password: "guess"})
		if err == nil && res.StatusCode != 407 {
			t.Fatalf("wrong password: %d", res.StatusCode)
		}
	}
	nothingIn(t, far.messages, "a refused text reached the trunk")
}

// TestTypingRelay: a member's isComposing reaches the trunk as the shared
// number and the teammates' devices, names the member as typing until it
// expires, and is never stored; the party's own typing reaches the
// members.
func TestTypingRelay(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	far := newDevice(t, e, "far", "udp")
	if err := e.dir.AddTrunk("", "carrier", far.addr.String(), []string{far.addr.String()}); err != nil {
		t.Fatal(err)
	}
	alice, bob := newDevice(t, e, "alice", "udp"), newDevice(t, e, "bob", "tcp")
	res := do(t, phoneClient(t, alice), newText(e, "alice", testRealm, "+15550007777", ctypeComposing, composingActive), "alice")
	if res.StatusCode != 200 {
		t.Fatalf("isComposing: %d", res.StatusCode)
	}
	m := recv(t, far.messages, "the trunk's isComposing")
	if m.From().Address.User != testNumber || m.ContentType().Value() != ctypeComposing {
		t.Fatalf("at the trunk:\n%s", m)
	}
	n := recv(t, bob.messages, "bob's typing notice")
	if n.From().Address.User != "alice" || !strings.Contains(n.From().DisplayName, "+15550007777") || !strings.Contains(string(n.Body()), "active") {
		t.Fatalf("bob's notice:\n%s", n)
	}
	nothingIn(t, alice.messages, "the typist's own phone got a notice")
	if got := e.srv.Typing(testNumber, "+15550007777"); len(got) != 1 || got[0].Who != "alice" || !got[0].Member {
		t.Fatalf("typing: %+v", got)
	}
	e.clock.Advance(21 * time.Second) // the document's refresh is 20 s
	if got := e.srv.Typing(testNumber, "+15550007777"); len(got) != 0 {
		t.Fatalf("typing after the refresh: %+v", got)
	}
	if items, _ := e.inbox.Items(testNumber, 10); len(items) != 0 {
		t.Fatalf("a typing notice was stored: %+v", items)
	}

	// The party types: both members' devices hear it.
	if res := do(t, phoneClient(t, far), newText(e, "+15550009999", "carrier.example", testNumber, ctypeComposing,
		strings.Replace(composingActive, "<refresh>20</refresh>", "", 1)), ""); res.StatusCode != 200 {
		t.Fatalf("party's isComposing: %d", res.StatusCode)
	}
	recv(t, alice.messages, "alice's notice of the party typing")
	recv(t, bob.messages, "bob's notice of the party typing")
	if got := e.srv.Typing(testNumber, "+15550009999"); len(got) != 1 || got[0].Member || got[0].Until.Sub(e.clock.Now()) != DefaultTypingRefresh {
		t.Fatalf("party typing: %+v", got)
	}
}

// TestTextUserToUser: a user's text to a colleague reaches the
// colleague's devices and no shared inbox.
func TestTextUserToUser(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	alice, bob := newDevice(t, e, "alice", "udp"), newDevice(t, e, "bob", "udp")
	if res := do(t, phoneClient(t, alice), newText(e, "alice", testRealm, "bob", "text/plain", "lunch?"), "alice"); res.StatusCode != 200 {
		t.Fatalf("text to bob: %d", res.StatusCode)
	}
	if m := recv(t, bob.messages, "bob's text"); string(m.Body()) != "lunch?" || m.GetHeader("Proxy-Authorization") != nil {
		t.Fatalf("bob got:\n%s", m)
	}
	if items, _ := e.inbox.Items(testNumber, 10); len(items) != 0 {
		t.Fatalf("a colleague's text landed in the inbox: %+v", items)
	}
	// To a colleague with no device: 480.
	if err := e.dir.AddUser("", acl.NewUser{Name: "dora", Password: "secret-dora"}); err != nil {
		t.Fatal(err)
	}
	if res := do(t, phoneClient(t, alice), newText(e, "alice", testRealm, "dora", "text/plain", "hi"), "alice"); res.StatusCode != 480 {
		t.Fatalf("text to dora: %d", res.StatusCode)
	}
}

package sip

import (
	"context"
	"fmt"
	"strings"
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

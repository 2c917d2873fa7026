package main

// Texting interop: SIPp as the carrier and as the members' phones, against
// the built binary on loopback (scenarios testdata/sipp/text_*.xml). The
// devices register with fork_register.xml and then serve on the same UDP
// port, as in the forking bench.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/inbox"
)

// sippOnce runs one SIPp call of scenario from port with the injection
// fields (USER;PASSWORD[;...]) and waits for it.
func (lab *forkLab) sippOnce(t *testing.T, name, scenario string, port int, fields string, extra ...string) *forkPeer {
	t.Helper()
	bin := requirePeer(t, "sipp")
	args := lab.sippArgs(scenario, port, "u1", 1, 10, 0)
	// A Call-ID of its own: the proxy keeps a member's Call-ID towards the
	// trunk, and one SIPp there serves several members' MESSAGEs.
	args[slices.Index(args, "-cid_str")+1] = fmt.Sprintf("%s-%d-%%u@partyline.test", strings.Fields(name)[0], port)
	if fields != "" {
		inf := filepath.Join(t.TempDir(), "fields.csv")
		if err := os.WriteFile(inf, []byte("SEQUENTIAL\n"+fields+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-inf", inf)
	}
	p := startForkPeer(t, name, bin, append(args, extra...)...)
	p.wait(t)
	return p
}

// trace is the SIP messages a SIPp peer sent and received.
func (p *forkPeer) trace(t *testing.T) string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(p.dir, "*_messages.log"))
	if len(logs) != 1 {
		t.Fatalf("%s: want one SIPp message log, found %v", p.name, logs)
	}
	data, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// conversation polls "inbox list" (bounded: 100 looks, 50 ms apart) for
// the conversation with party until holds; the server records texts'
// deliveries after it answered, in another process.
func (lab *forkLab) conversation(t *testing.T, as, party string, until func(admin.ConversationDetail) bool) admin.ConversationDetail {
	t.Helper()
	var d admin.ConversationDetail
	for polls := 0; ; polls++ {
		var list []admin.ConversationView
		if err := json.Unmarshal([]byte(ok(t, lab.dir, "-o", "json", "inbox", "list", "--number", forkNumber)), &list); err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			if c.Party == party {
				if err := json.Unmarshal([]byte(ok(t, lab.dir, "-o", "json", "--as", as, "inbox", "show", c.ID)), &d); err != nil {
					t.Fatal(err)
				}
				if until(d) {
					return d
				}
			}
		}
		if polls == 100 {
			t.Fatalf("no conversation with %s as expected: %s", party, forkJSON(d))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestInteropTexting: the carrier's text reaches both members' SIPp
// devices and the inbox; a member's text and isComposing leave through the
// trunk as the shared number; the teammate's device sees the typing; a
// non-member is refused with 403 and nothing reaches the trunk.
func TestInteropTexting(t *testing.T) {
	requirePeer(t, "sipp")
	lab := newForkLab(t, []string{"ann", "ben"}, func(dir string) {
		ok(t, dir, "user", "add", "nim", "--password", forkPassword("nim"))
	})
	// The devices register, then serve on the same ports.
	devs := map[string]int{"ann": freePort(t), "ben": freePort(t)}
	for user, port := range devs {
		if p := lab.sippOnce(t, user+" registers", "fork_register.xml", port, user+";"+forkPassword(user)); p.code != 0 {
			t.Fatalf("%s did not register:\n%s", user, p.report())
		}
	}
	bin := requirePeer(t, "sipp")
	// ann's device takes the carrier's text; ben's also the notice that
	// ann is typing.
	annDev := startForkPeer(t, "ann's device", bin, lab.sippArgs("text_device.xml", devs["ann"], "u1", 1, 10, 0)...)
	benDev := startForkPeer(t, "ben's device", bin, lab.sippArgs("text_device.xml", devs["ben"], "u1", 2, 10, 0)...)

	carrier := lab.sippOnce(t, "carrier texts", "text_trunk_send.xml", lab.trunkPort, "", "-s", "15551230001")
	expectExit0(t, carrier, annDev)
	for _, dev := range []*forkPeer{annDev} {
		if tr := dev.trace(t); !strings.Contains(tr, "Is the shop open on Saturday?") || !strings.Contains(tr, "sip:+15557654321@") {
			t.Errorf("%s got no text from +15557654321:\n%s", dev.name, tr)
		}
	}
	// ben waits for both deliveries (each look is an opening by ben); ann,
	// who has not looked, has it unread.
	d := lab.conversation(t, "ben", "+15557654321", func(d admin.ConversationDetail) bool {
		return len(d.Timeline) > 0 && d.Timeline[0].Message != nil && len(d.Timeline[0].Message.Deliveries) == 2
	})
	m := d.Timeline[0].Message
	if strings.TrimSpace(m.Text) != "Is the shop open on Saturday?" || m.Direction != "inbound" ||
		m.Deliveries[0].Outcome != inbox.DeliveryDelivered || m.Deliveries[1].Outcome != inbox.DeliveryDelivered {
		t.Fatalf("the carrier's text in the inbox: %s", forkJSON(d))
	}
	var annList []admin.ConversationView
	if err := json.Unmarshal([]byte(ok(t, lab.dir, "-o", "json", "--as", "ann", "inbox", "list", "--number", forkNumber)), &annList); err != nil {
		t.Fatal(err)
	}
	if len(annList) != 1 || annList[0].ID != d.ID || !annList[0].Unread {
		t.Fatalf("ann's inbox list: want the carrier's conversation unread: %s", forkJSON(annList))
	}

	// The members' side: the carrier takes two MESSAGEs (ann's text and
	// her isComposing), each as the shared number.
	trunk := startForkPeer(t, "carrier takes texts", bin, lab.sippArgs("text_trunk_uas.xml", lab.trunkPort, "u1", 2, 10, 0)...)
	dest := "+15550001111"
	nim := lab.sippOnce(t, "nim texts", "text_member_send.xml", freePort(t), "nim;"+forkPassword("nim")+";"+dest)
	if nim.code != 0 || nim.received(t, 403) != 1 {
		t.Fatalf("a non-member's text: exit %d, want one 403:\n%s", nim.code, nim.report())
	}
	ann := lab.sippOnce(t, "ann texts", "text_member_send.xml", freePort(t), "ann;"+forkPassword("ann")+";"+dest)
	typing := lab.sippOnce(t, "ann types", "text_member_composing.xml", freePort(t), "ann;"+forkPassword("ann")+";"+dest)
	expectExit0(t, ann, typing, trunk, benDev)
	for _, p := range []*forkPeer{ann, typing} {
		if p.received(t, 200) != 1 {
			t.Errorf("%s: no 200:\n%s", p.name, p.report())
		}
	}
	tr := trunk.trace(t)
	if strings.Count(tr, "MESSAGE sip:"+dest+"@") != 2 || !strings.Contains(tr, "Running late, there by 3") ||
		!strings.Contains(tr, "application/im-iscomposing+xml") || strings.Contains(tr, "Proxy-Authorization") || strings.Contains(tr, "nim") {
		t.Errorf("what reached the trunk:\n%s", tr)
	}
	if bt := benDev.trace(t); !strings.Contains(bt, "application/im-iscomposing+xml") || !strings.Contains(bt, "sip:ann@") {
		t.Errorf("ben's device saw no typing from ann:\n%s", bt)
	}
	out := lab.conversation(t, "ann", dest, func(d admin.ConversationDetail) bool {
		return len(d.Timeline) > 0 && d.Timeline[0].Message != nil && d.Timeline[0].Message.Status == inbox.MsgSent
	})
	if sent := out.Timeline[0].Message; sent.Member != "ann" || sent.Direction != "outbound" || strings.TrimSpace(sent.Text) != "Running late, there by 3" {
		t.Fatalf("ann's text in the inbox: %s", forkJSON(out))
	}
	if len(out.Timeline) != 2 || out.Timeline[1].Kind != inbox.KindOpened { // the text, then this opening
		t.Fatalf("the typing notice was stored, or more: %s", forkJSON(out.Timeline))
	}
	if len(out.Typing) != 1 || out.Typing[0].Who != "ann" {
		t.Fatalf("inbox show does not name ann as typing: %s", forkJSON(out.Typing))
	}

	// The CLI texts as ann through the running server; the carrier's SIPp
	// checks it comes as the shared number.
	trunk = startForkPeer(t, "carrier takes the CLI's text", bin, lab.sippArgs("text_trunk_uas.xml", lab.trunkPort, "u1", 1, 10, 0)...)
	if out := ok(t, lab.dir, "--as", "ann", "message", "send", "--number", forkNumber, "--to", "+1 555 000 1111", "--text", "Your order shipped"); !strings.Contains(out, "sent") {
		t.Fatalf("message send: %s", out)
	}
	expectExit0(t, trunk)
	if tr := trunk.trace(t); !strings.Contains(tr, "Your order shipped") {
		t.Fatalf("the CLI's text at the trunk:\n%s", tr)
	}
	for _, bad := range [][]string{
		{"message", "send", "--number", forkNumber, "--to", dest, "--text", "x"},                // the operator is nobody
		{"--as", "nim", "message", "send", "--number", forkNumber, "--to", dest, "--text", "x"}, // no member
		{"--as", "ann", "message", "send", "--number", forkNumber, "--to", "555", "--text", "x"},
	} {
		if r := cli(t, lab.dir, bad...); r.code != 1 || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
			t.Errorf("partyline %v: %s", bad, r)
		}
	}
	// Comments and states from the CLI, as people read them.
	out = lab.conversation(t, "ann", dest, func(d admin.ConversationDetail) bool { return len(d.Timeline) >= 3 })
	ok(t, lab.dir, "--as", "ben", "inbox", "comment", out.Timeline[0].ID, "--text", "ann has this one")
	ok(t, lab.dir, "--as", "ann", "inbox", "done", out.ID)
	show := ok(t, lab.dir, "--as", "ben", "inbox", "show", out.ID)
	for _, want := range []string{"opened by    ann", "opened by    ben", "ann has this one", "marked done", "Your order shipped", "(sent)"} {
		if !strings.Contains(show, want) {
			t.Errorf("inbox show lacks %q:\n%s", want, show)
		}
	}
	if list := ok(t, lab.dir, "--as", "ben", "inbox", "list", "--state", "done"); !strings.Contains(list, dest) {
		t.Errorf("inbox list --state done:\n%s", list)
	}
}

package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
)

// inboxWorkspace: number A with members mia (admin of A) and moe, number B
// with max; olga owns the workspace and adam administers it, neither a
// member. A has one conversation (an inbound text from +15557654321).
func inboxWorkspace(t *testing.T) (*Service, inbox.Message) {
	t.Helper()
	s := openService(t)
	d := s.dir
	addUsers(t, d, map[string]acl.Role{"olga": acl.RoleOwner, "adam": acl.RoleAdmin, "mia": acl.RoleMember, "moe": acl.RoleMember, "max": acl.RoleMember})
	a, _ := d.AddNumber("", "+15551230001", "")
	b, _ := d.AddNumber("", "+15551230002", "")
	d.AddMember("", a, "mia", acl.RoleAdmin)
	d.AddMember("", a, "moe", acl.RoleMember)
	d.AddMember("", b, "max", acl.RoleMember)
	m := inbox.Message{ID: s.box.NewID(), Number: a, Party: "+15557654321", Direction: "inbound", Text: "where is my order?",
		ContentType: "text/plain", At: time.Now(), Status: inbox.MsgReceived}
	if err := s.box.SaveMessage(&m); err != nil {
		t.Fatal(err)
	}
	return s, m
}

// TestCommentVisibility: every kind of actor against reading and writing
// a number's comments: its members (any number role) may; a member of
// another number finds nothing there; workspace owners and admins who are
// not members are told to add themselves; the local operator may.
func TestCommentVisibility(t *testing.T) {
	s, m := inboxWorkspace(t)
	var convs []ConversationView
	if e := call(t, s, "mia", OpInboxList, InboxArgs{}, &convs); e != nil || len(convs) != 1 {
		t.Fatalf("mia's inbox: %v %v", convs, e)
	}
	conv := convs[0].ID
	for _, tc := range []struct {
		as   string
		kind string // "" allowed
	}{
		{"mia", ""}, {"moe", ""}, {"", ""},
		{"max", "not_found"}, {"olga", "forbidden"}, {"adam", "forbidden"},
	} {
		var ev inbox.Event
		e := call(t, s, tc.as, OpInboxComment, InboxArgs{ID: m.ID, Text: "note from " + tc.as}, &ev)
		if got := kindOf(e); got != tc.kind {
			t.Errorf("%q comments: %v, want %q", tc.as, e, tc.kind)
		}
		var d ConversationDetail
		e = call(t, s, tc.as, OpInboxShow, InboxArgs{ID: conv}, &d)
		if got := kindOf(e); got != tc.kind {
			t.Errorf("%q reads: %v, want %q", tc.as, e, tc.kind)
		}
		if tc.kind == "forbidden" && !strings.Contains(e.Message, "number member add NUMBER "+tc.as) {
			t.Errorf("%q is not told to add themselves: %s", tc.as, e.Message)
		}
		if tc.kind == "not_found" && !strings.Contains(e.Message, "no conversation") {
			t.Errorf("%q: %s", tc.as, e.Message)
		}
		var list []ConversationView
		call(t, s, tc.as, OpInboxList, InboxArgs{}, &list)
		if tc.kind == "" && tc.as != "" && len(list) != 1 || tc.kind != "" && len(list) != 0 {
			t.Errorf("%q lists %d conversations", tc.as, len(list))
		}
	}
	// A reply joins the thread; the comments are in the timeline, by author.
	var first inbox.Event
	call(t, s, "mia", OpInboxComment, InboxArgs{ID: m.ID, Text: "I'll take it"}, &first)
	var reply inbox.Event
	if e := call(t, s, "moe", OpInboxComment, InboxArgs{ID: first.ID, Text: "thanks"}, &reply); e != nil || reply.Thread != m.ID || reply.Parent != first.ID {
		t.Fatalf("reply: %+v %v", reply, e)
	}
	// max cannot reply into A's thread either, and cannot tell it exists.
	e1 := call(t, s, "max", OpInboxComment, InboxArgs{ID: first.ID, Text: "hi"}, nil)
	e2 := call(t, s, "max", OpInboxComment, InboxArgs{ID: "ffffffffffffffffffffffffffffffff", Text: "hi"}, nil)
	if e1 == nil || e2 == nil || strings.ReplaceAll(e1.Message, first.ID, "X") != strings.ReplaceAll(e2.Message, "ffffffffffffffffffffffffffffffff", "X") {
		t.Fatalf("a foreign item differs from a missing one: %v / %v", e1, e2)
	}
	var d ConversationDetail
	call(t, s, "moe", OpInboxShow, InboxArgs{ID: conv}, &d)
	var authors []string
	for _, e := range d.Timeline {
		if e.Kind == inbox.KindComment {
			authors = append(authors, e.User)
		}
	}
	if strings.Join(authors, ",") != "mia,moe,operator,mia,moe" {
		t.Fatalf("comment authors in order: %v", authors)
	}
	if e := call(t, s, "mia", OpInboxComment, InboxArgs{ID: m.ID, Text: "  "}, nil); kindOf(e) != "invalid" {
		t.Fatalf("empty comment: %v", e)
	}
}

func kindOf(e *Error) string {
	if e == nil {
		return ""
	}
	return e.Kind
}

// TestInboxOpenedByAndStates: inbox show records each opening and clears
// the team's unread; read markers are per user; done/open/unread by hand;
// listing by state.
func TestInboxOpenedByAndStates(t *testing.T) {
	s, m := inboxWorkspace(t)
	var list []ConversationView
	call(t, s, "mia", OpInboxList, InboxArgs{State: "unread"}, &list)
	if len(list) != 1 || !list[0].Unread || list[0].State != inbox.StateUnread {
		t.Fatalf("unread listing: %+v", list)
	}
	conv := list[0].ID
	var d ConversationDetail
	if e := call(t, s, "mia", OpInboxShow, InboxArgs{ID: conv}, &d); e != nil || d.State != inbox.StateOpen || len(d.OpenedBy) != 1 || d.OpenedBy[0].User != "mia" {
		t.Fatalf("mia opens: %+v %v", d, e)
	}
	if d.Timeline[0].Message == nil || d.Timeline[0].Message.Text != m.Text {
		t.Fatalf("timeline: %+v", d.Timeline)
	}
	call(t, s, "moe", OpInboxList, InboxArgs{}, &list)
	// moe has not opened it: the team state is open, but it is unread for him.
	if !list[0].Unread || list[0].State != inbox.StateOpen {
		t.Fatalf("moe never opened it: unread for him: %+v", list[0])
	}
	call(t, s, "mia", OpInboxList, InboxArgs{}, &list)
	if list[0].Unread {
		t.Fatalf("mia opened it: %+v", list[0])
	}
	call(t, s, "moe", OpInboxShow, InboxArgs{ID: conv}, &d)
	if len(d.OpenedBy) != 2 || d.OpenedBy[1].User != "moe" {
		t.Fatalf("openings: %+v", d.OpenedBy)
	}
	var v ConversationView
	for _, st := range []string{"done", "unread", "open"} {
		if e := call(t, s, "moe", OpInboxState, InboxArgs{ID: conv, State: st}, &v); e != nil || v.State != st {
			t.Fatalf("%s: %+v %v", st, v, e)
		}
		call(t, s, "mia", OpInboxList, InboxArgs{State: st}, &list)
		if len(list) != 1 {
			t.Fatalf("listing %s: %d", st, len(list))
		}
	}
	if e := call(t, s, "moe", OpInboxState, InboxArgs{ID: conv, State: "archived"}, nil); kindOf(e) != "invalid" {
		t.Fatalf("bad state: %v", e)
	}
	if e := call(t, s, "moe", OpInboxList, InboxArgs{State: "later"}, nil); kindOf(e) != "invalid" {
		t.Fatalf("bad --state: %v", e)
	}
}

// TestMessageSendChecks: the CLI's text goes out only for a member, in
// their name, through the running server; without one it says so.
func TestMessageSendChecks(t *testing.T) {
	s, _ := inboxWorkspace(t)
	args := MessageArgs{Number: "+15551230001", To: "+15550007777", Text: "hello"}
	if e := call(t, s, "mia", OpMessageSend, args, nil); kindOf(e) != "needs_server" || !strings.Contains(e.Message, "partyline serve") {
		t.Fatalf("no server: %v", e)
	}
	var sent []string
	s.SendText = func(number, member, to, text string) (inbox.Message, error) {
		sent = append(sent, member+">"+to)
		st := inbox.MsgSent
		if text == "refused" {
			st = inbox.MsgFailed
		}
		return inbox.Message{ID: "m1", Number: number, Party: to, Member: member, Text: text, Status: st, StatusCode: 503}, nil
	}
	for _, tc := range []struct {
		as   string
		args MessageArgs
		kind string
	}{
		{"mia", args, ""},
		{"max", args, "forbidden"},
		{"olga", args, "forbidden"},
		{"", args, "invalid"}, // the operator is nobody's name
		{"mia", MessageArgs{Number: args.Number, To: "12", Text: "x"}, "invalid"},
		{"mia", MessageArgs{Number: args.Number, To: "+15551230002", Text: "x"}, "invalid"},
		{"mia", MessageArgs{Number: args.Number, To: args.To, Text: strings.Repeat("x", MaxText+1)}, "invalid"},
		{"mia", MessageArgs{Number: args.Number, To: args.To, Text: "refused"}, "not_delivered"},
	} {
		if e := call(t, s, tc.as, OpMessageSend, tc.args, nil); kindOf(e) != tc.kind {
			t.Errorf("%q %+v: %v, want %q", tc.as, tc.args.To, e, tc.kind)
		}
	}
	if strings.Join(sent, " ") != "mia>+15550007777 mia>+15550007777" {
		t.Fatalf("sent: %v", sent)
	}
}

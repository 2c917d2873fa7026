package admin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/config"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// openService opens the stores on a new data directory, as cmd/partyline
// does, and makes the service over them.
func openService(t *testing.T) *Service {
	t.Helper()
	cfg := config.Config{DataDir: t.TempDir(), Realm: "test.example"}.WithDefaults()
	db, err := bolt.Open(cfg.DBPath(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir, err := acl.Open(db, acl.Options{Realm: cfg.Realm})
	if err != nil {
		t.Fatal(err)
	}
	loc, err := location.Open(db, location.Options{})
	if err != nil {
		t.Fatal(err)
	}
	box, err := inbox.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, Stores{Directory: dir, Location: loc, Inbox: box}, nil)
}

// addUsers adds users with their workspace roles (password "password1").
func addUsers(t *testing.T, d *acl.Directory, users map[string]acl.Role) {
	t.Helper()
	for name, role := range users {
		if err := d.AddUser("", acl.NewUser{Name: name, Password: "password1", Role: role}); err != nil {
			t.Fatal(err)
		}
	}
}

func call(t *testing.T, s *Service, as, op string, args any, out any) *Error {
	t.Helper()
	raw, _ := json.Marshal(args)
	resp := s.Handle(context.Background(), Request{As: as, Op: op, Args: raw})
	if resp.Error != nil {
		return resp.Error
	}
	if out != nil {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			t.Fatal(err)
		}
	}
	return nil
}

// TestCallHistoryAccess: only members of a number see its calls; a
// workspace admin who is not a member is told to add themselves; a call of
// another number is indistinguishable from a missing one.
func TestCallHistoryAccess(t *testing.T) {
	s := openService(t)
	d := s.dir
	addUsers(t, d, map[string]acl.Role{"olga": acl.RoleOwner, "adam": acl.RoleAdmin, "mia": acl.RoleMember, "max": acl.RoleMember})
	a, _ := d.AddNumber("", "+15551230001", "")
	b, _ := d.AddNumber("", "+15551230002", "")
	d.AddMember("", a, "mia", acl.RoleMember)
	d.AddMember("", b, "max", acl.RoleMember)
	ca := &inbox.Call{ID: s.box.NewID(), Number: a, Disposition: inbox.Missed, Branches: []inbox.Branch{}}
	cb := &inbox.Call{ID: s.box.NewID(), Number: b, Disposition: inbox.Answered, Branches: []inbox.Branch{}}
	s.box.PutCall(ca)
	s.box.PutCall(cb)

	var got []inbox.Call
	if e := call(t, s, "mia", OpCalls, CallArgs{}, &got); e != nil || len(got) != 1 || got[0].ID != ca.ID {
		t.Fatalf("mia's calls: %v %+v", e, got)
	}
	if e := call(t, s, "", OpCalls, CallArgs{}, &got); e != nil || len(got) != 2 || got[0].ID != cb.ID {
		t.Fatalf("operator's calls: %v %+v", e, got)
	}
	if e := call(t, s, "mia", OpCalls, CallArgs{Number: b}, nil); e == nil || e.Kind != "forbidden" {
		t.Fatalf("mia on another number: %v", e)
	}
	if e := call(t, s, "adam", OpCalls, CallArgs{Number: a}, nil); e == nil || !strings.Contains(e.Message, "number member add NUMBER adam") {
		t.Fatalf("a workspace admin who is not a member: %v", e)
	}
	var one inbox.Call
	if e := call(t, s, "mia", OpCallShow, CallArgs{ID: ca.ID}, &one); e != nil || one.Number != a {
		t.Fatalf("show own: %v", e)
	}
	e1 := call(t, s, "mia", OpCallShow, CallArgs{ID: cb.ID}, nil)
	e2 := call(t, s, "mia", OpCallShow, CallArgs{ID: "ffff"}, nil)
	if e1 == nil || e2 == nil || e1.Kind != e2.Kind || strings.Replace(e1.Message, cb.ID, "X", 1) != strings.Replace(e2.Message, "ffff", "X", 1) {
		t.Fatalf("another number's call should look missing: %v / %v", e1, e2)
	}
}

func TestFlowOps(t *testing.T) {
	s := openService(t)
	d := s.dir
	for _, u := range []string{"a", "b", "c"} {
		d.AddUser("", acl.NewUser{Name: u, Password: "password1"})
	}
	n, _ := d.AddNumber("", "+15551230001", "")
	for _, u := range []string{"a", "b", "c"} {
		d.AddMember("", n, u, acl.RoleMember)
	}
	var v FlowView
	if e := call(t, s, "", OpFlowShow, FlowArgs{Number: n}, &v); e != nil || !v.Default || len(v.Steps) != 1 || len(v.Steps[0].Users) != 3 {
		t.Fatalf("default flow: %v %+v", e, v)
	}
	if e := call(t, s, "", OpFlowSet, FlowArgs{Number: n, Steps: []string{"a:10", "b,c"}, Then: "hangup"}, &v); e != nil || v.Default || v.Steps[0].Seconds != 10 || v.Steps[1].Seconds != 25 || v.Then != "hangup" {
		t.Fatalf("custom flow: %v %+v", e, v)
	}
	if e := call(t, s, "", OpFlowSet, FlowArgs{Number: n}, nil); e == nil || !strings.Contains(e.Message, "--step") {
		t.Fatalf("no steps: %v", e)
	}
	if e := call(t, s, "", OpFlowSet, FlowArgs{Number: n, Reset: true}, &v); e != nil || !v.Default {
		t.Fatalf("reset: %v %+v", e, v)
	}
}

func TestVoicemailOps(t *testing.T) {
	s := openService(t)
	d := s.dir
	for _, u := range []struct {
		n string
		r acl.Role
	}{{"adam", acl.RoleAdmin}, {"mia", acl.RoleMember}, {"nora", acl.RoleMember}, {"max", acl.RoleMember}} {
		d.AddUser("", acl.NewUser{Name: u.n, Password: "password1", Role: u.r})
	}
	n, _ := d.AddNumber("", "+15551230001", "")
	d.AddMember("", n, "nora", acl.RoleOwner)
	d.AddMember("", n, "mia", acl.RoleMember)
	var changed []string
	s.OnVoicemailChange = func(number string) { changed = append(changed, number) }
	v := &inbox.Voicemail{ID: s.box.NewID(), Number: n, From: "+15550009999"}
	if err := s.box.SaveVoicemail(v, []byte{1, 0, 2, 0}, nil); err != nil {
		t.Fatal(err)
	}
	var list []inbox.Voicemail
	if e := call(t, s, "mia", OpVoicemailList, VoicemailArgs{}, &list); e != nil || len(list) != 1 {
		t.Fatalf("mia's list: %v %v", e, list)
	}
	if e := call(t, s, "max", OpVoicemailList, VoicemailArgs{}, &list); e != nil || len(list) != 0 {
		t.Fatalf("a non-member sees voicemail: %v %v", e, list)
	}
	if e := call(t, s, "max", OpVoicemailAudio, VoicemailArgs{ID: v.ID}, nil); e == nil || e.Kind != "not_found" {
		t.Fatalf("a non-member exports: %v", e)
	}
	if e := call(t, s, "adam", OpVoicemailAudio, VoicemailArgs{ID: v.ID}, nil); e == nil || !strings.Contains(e.Message, "number member add NUMBER adam") {
		t.Fatalf("a workspace admin who is not a member: %v", e)
	}
	var audio VoicemailAudio
	if e := call(t, s, "mia", OpVoicemailAudio, VoicemailArgs{ID: v.ID}, &audio); e != nil || len(audio.PCM) != 4 || len(audio.Voicemail.HeardBy) != 1 || audio.Voicemail.HeardBy[0].User != "mia" {
		t.Fatalf("export: %v %+v", e, audio)
	}
	if e := call(t, s, "mia", OpVoicemailDelete, VoicemailArgs{ID: v.ID}, nil); e == nil || e.Kind != "forbidden" {
		t.Fatalf("a member deletes: %v", e)
	}
	if e := call(t, s, "nora", OpVoicemailDelete, VoicemailArgs{ID: v.ID}, nil); e != nil {
		t.Fatalf("the number's owner deletes: %v", e)
	}
	if len(changed) != 2 {
		t.Fatalf("lamps told %d times, want 2 (heard, deleted)", len(changed))
	}
	if e := call(t, s, "mia", OpGreetingSet, VoicemailArgs{Number: n, PCM: make([]byte, 16000)}, nil); e == nil || e.Kind != "forbidden" {
		t.Fatalf("a member sets the greeting: %v", e)
	}
	if e := call(t, s, "nora", OpGreetingSet, VoicemailArgs{Number: n, PCM: make([]byte, 100)}, nil); e == nil || e.Kind != "invalid" {
		t.Fatalf("a tiny greeting: %v", e)
	}
	if e := call(t, s, "nora", OpGreetingSet, VoicemailArgs{Number: n, PCM: make([]byte, 16000)}, nil); e != nil {
		t.Fatal(e)
	}
	if g, _ := s.box.Greeting(n); len(g) != 16000 {
		t.Fatal("greeting not stored")
	}
}

// TestArgumentsStrict: every operation refuses an argument it does not
// take, saying which, and changes nothing; a value of the wrong type is
// refused naming the field too.
func TestArgumentsStrict(t *testing.T) {
	s := openService(t)
	ops := operations()
	if len(ops) != 45 {
		t.Errorf("%d operations, want 45: a group left out of operations()?", len(ops))
	}
	for name := range ops {
		resp := s.Handle(context.Background(), Request{Op: name, Args: json.RawMessage(`{"colour":"red"}`)})
		want := `bad arguments: unknown field "colour": this partyline server may be older than the CLI`
		if resp.Error == nil || resp.Error.Kind != "invalid" || !strings.Contains(resp.Error.Message, want) {
			t.Errorf("%s with an unknown field: %+v, want invalid %q", name, resp.Error, want)
		}
	}
	e := call(t, s, "", OpUserAdd, map[string]any{"name": "olga", "password": "s3cret-pass", "colour": "red"}, nil)
	if e == nil || e.Message != `invalid: bad arguments: unknown field "colour": this partyline server may be older than the CLI` {
		t.Fatalf("user.add with an unknown field: %v", e)
	}
	if users := s.dir.Snapshot().Users(); len(users) != 0 {
		t.Fatalf("user.add with an unknown field added %v", users)
	}
	e = call(t, s, "", OpUserAdd, map[string]any{"name": "olga", "password": "s3cret-pass", "role": 7}, nil)
	if e == nil || e.Kind != "invalid" || !strings.Contains(e.Message, "UserArgs.role of type string") {
		t.Fatalf("a number for a string: %v", e)
	}
	if e := call(t, s, "", OpUserAdd, UserArgs{Name: "olga", Password: "s3cret-pass"}, nil); e != nil {
		t.Fatalf("the same without the unknown field: %v", e)
	}
}

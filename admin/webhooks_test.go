package admin

import (
	"encoding/json"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/config"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
	"github.com/partyline/partyline/webhook"
)

// openWebhookService is openService with the webhook store too.
func openWebhookService(t *testing.T) *Service {
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
	hooks, err := webhook.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, Stores{Directory: dir, Location: loc, Inbox: box, Webhooks: hooks}, nil)
}

// TestWebhookOps: workspace owners and admins (and the operator) manage
// webhooks, members may not even list them; the secret is returned by add
// only; bad input is refused naming what to fix.
func TestWebhookOps(t *testing.T) {
	s := openWebhookService(t)
	addUsers(t, s.dir, map[string]acl.Role{"olga": acl.RoleOwner, "adam": acl.RoleAdmin, "mia": acl.RoleMember})
	num, _ := s.dir.AddNumber("", "+15551230001", "")
	s.dir.AddMember("", num, "mia", acl.RoleOwner) // a number owner is still no workspace admin

	add := WebhookArgs{URL: "https://crm.example/hook", Events: []string{inbox.EventMessageReceived, inbox.EventCallCompleted}, Number: "+1 555 123 0001"}
	for op, args := range map[string]any{OpWebhookAdd: add, OpWebhookList: struct{}{}, OpWebhookRemove: WebhookArgs{ID: "wh1"}, OpWebhookDeliveries: WebhookArgs{ID: "wh1"}} {
		if e := call(t, s, "mia", op, args, nil); e == nil || e.Kind != "forbidden" || !strings.Contains(e.Message, "only workspace owners and admins") {
			t.Errorf("mia %s: %+v, want forbidden", op, e)
		}
	}
	var created WebhookCreated
	if e := call(t, s, "adam", OpWebhookAdd, add, &created); e != nil {
		t.Fatal(e)
	}
	if created.ID != "wh1" || created.Number != num || len(created.Secret) != 64 {
		t.Fatalf("created %+v", created)
	}
	var second WebhookCreated
	if e := call(t, s, "olga", OpWebhookAdd, WebhookArgs{URL: "http://127.0.0.1:9/x", Events: []string{inbox.EventCommentCreated}}, &second); e != nil {
		t.Fatal(e)
	}
	var raw json.RawMessage
	if e := call(t, s, "olga", OpWebhookList, struct{}{}, &raw); e != nil {
		t.Fatal(e)
	}
	if strings.Contains(string(raw), created.Secret) || strings.Contains(string(raw), "secret") {
		t.Fatalf("list shows a secret: %s", raw)
	}
	var list []WebhookView
	json.Unmarshal(raw, &list)
	if len(list) != 2 || list[0].ID != "wh1" || list[1].ID != "wh2" || list[1].Number != "" {
		t.Fatalf("list %+v", list)
	}
	// Events from now on are queued for the hooks that want them.
	m := &inbox.Message{ID: s.box.NewID(), Number: num, Party: "+15557654321", Direction: "inbound", Text: "hi", Status: inbox.MsgReceived}
	if err := s.box.SaveMessage(m); err != nil {
		t.Fatal(err)
	}
	var d WebhookDeliveries
	if e := call(t, s, "", OpWebhookDeliveries, WebhookArgs{ID: "wh1"}, &d); e != nil || d.ID != "wh1" || d.Pending != 0 || len(d.Attempts) != 0 {
		t.Fatalf("deliveries %+v, %+v (nothing delivers without a running deliverer)", d, e)
	}
	for _, tc := range []struct {
		args WebhookArgs
		kind string
		says string
	}{
		{WebhookArgs{URL: "https://x.example/", Events: []string{"call.rang"}}, "invalid", `unknown event "call.rang"`},
		{WebhookArgs{URL: "x.example", Events: []string{inbox.EventCallRinging}}, "invalid", "http:// or https://"},
		{WebhookArgs{URL: "https://x.example/", Events: []string{inbox.EventCallRinging}, Number: "+15559999999"}, "not_found", "unknown number +15559999999"},
	} {
		if e := call(t, s, "olga", OpWebhookAdd, tc.args, nil); e == nil || e.Kind != tc.kind || !strings.Contains(e.Message, tc.says) {
			t.Errorf("add %+v: %+v, want %s saying %q", tc.args, e, tc.kind, tc.says)
		}
	}
	var done Done
	if e := call(t, s, "adam", OpWebhookRemove, WebhookArgs{ID: "wh1"}, &done); e != nil || !strings.Contains(done.Done, "removed webhook wh1") {
		t.Fatalf("remove: %+v %+v", done, e)
	}
	if e := call(t, s, "adam", OpWebhookDeliveries, WebhookArgs{ID: "wh1"}, nil); e == nil || e.Kind != "not_found" || !strings.Contains(e.Message, "webhook list") {
		t.Fatalf("deliveries of a removed webhook: %+v", e)
	}
}

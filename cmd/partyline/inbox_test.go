package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/config"
	"github.com/partyline/partyline/inbox"
)

// TestInboxItemIDs is issue 15's item 6: each item in "inbox show -o json"
// has one id, the one in the table's ITEM column, and "inbox comment" takes
// it (a comment's too, for a reply); a call's is the id "calls show" takes,
// a voicemail's the one "voicemail heard" takes. Openings and state changes
// are no items and have none.
func TestInboxItemIDs(t *testing.T) {
	dir := t.TempDir()
	d, err := openData(config.Config{DataDir: dir, Realm: "test.example"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := d.stores.Directory.AddNumber("", "+15551230001", "")
	if err != nil {
		t.Fatal(err)
	}
	box, party := d.stores.Inbox, "+15550009999"
	call := &inbox.Call{ID: box.NewID(), Number: n, Direction: "inbound", Remote: party, StartedAt: time.Now(),
		Disposition: inbox.Missed, Branches: []inbox.Branch{}}
	vm := &inbox.Voicemail{ID: box.NewID(), Number: n, From: party, ReceivedAt: time.Now(), DurationS: 0.1, Codec: "PCMU"}
	text := &inbox.Message{ID: box.NewID(), Number: n, Party: party, Direction: "inbound", Text: "where is my order?",
		ContentType: "text/plain", At: time.Now(), Status: inbox.MsgReceived}
	if err := box.PutCall(call); err != nil {
		t.Fatal(err)
	}
	if err := box.SaveVoicemail(vm, make([]byte, 1600), nil); err != nil {
		t.Fatal(err)
	}
	if err := box.SaveMessage(text); err != nil {
		t.Fatal(err)
	}
	d.Close()

	var convs []admin.ConversationView
	if err := json.Unmarshal([]byte(ok(t, dir, "-o", "json", "inbox", "list")), &convs); err != nil || len(convs) != 1 {
		t.Fatalf("inbox list: %v %+v", err, convs)
	}
	conv := convs[0].ID
	ok(t, dir, "inbox", "comment", text.ID, "--text", "on it")
	ok(t, dir, "inbox", "done", conv)

	// The table first: showing the JSON after adds one opening at its end.
	table := strings.Split(strings.TrimSpace(ok(t, dir, "inbox", "show", conv)), "\n")
	raw := ok(t, dir, "-o", "json", "inbox", "show", conv)
	var detail struct {
		Timeline []map[string]any `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(raw), &detail); err != nil {
		t.Fatal(err)
	}
	var rows []string // the ITEM column
	for i, line := range table {
		if strings.HasPrefix(line, "AT ") {
			rows = table[i+1:]
			break
		}
	}
	if len(rows) != len(detail.Timeline)-1 {
		t.Fatalf("%d rows in the table, %d entries in the JSON (one more opening):\n%s\n%s", len(rows), len(detail.Timeline), strings.Join(table, "\n"), raw)
	}
	ids := map[string]string{} // kind → id
	for i, e := range detail.Timeline {
		id, _ := e["id"].(string)
		kind, _ := e["kind"].(string)
		if _, ok := e["ref"]; ok {
			t.Errorf("entry %d still has a ref beside its id: %v", i, e)
		}
		if i < len(rows) {
			if f := strings.Fields(rows[i]); len(f) < 3 || f[2] != orDash(id) {
				t.Errorf("table row %d %q: ITEM is not the JSON id %q", i, rows[i], id)
			}
		}
		switch kind {
		case inbox.KindOpened, inbox.KindState:
			if id != "" {
				t.Errorf("%s entry %d has an id %q: activity is no item", kind, i, id)
			}
			continue
		}
		if id == "" {
			t.Errorf("%s entry %d has no id: %v", kind, i, e)
			continue
		}
		ids[kind] = id
		if out := ok(t, dir, "inbox", "comment", id, "--text", "noted"); !strings.HasSuffix(out, " added to "+id+"\n") {
			t.Errorf("comment on %s %s: %q", kind, id, out)
		}
	}
	if ids[inbox.KindCall] != call.ID || ids[inbox.KindVoicemail] != vm.ID || ids[inbox.KindMessage] != text.ID || ids[inbox.KindComment] == "" {
		t.Fatalf("item ids by kind: %v; want the call %s, the voicemail %s, the text %s and a comment", ids, call.ID, vm.ID, text.ID)
	}
	ok(t, dir, "calls", "show", ids[inbox.KindCall])
	ok(t, dir, "voicemail", "heard", ids[inbox.KindVoicemail])
}

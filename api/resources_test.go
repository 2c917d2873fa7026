package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/inbox"
)

// TestMatrix: every inbox endpoint as every kind of actor, on number N:
// its members (owner nora, admin nadia, member mo) may; a member of another
// number (mia) finds nothing there, exactly as for a missing id; workspace
// owners and admins who are not members (olga, adam) are refused with the
// CLI's advice to add themselves. Nothing refused changes anything.
func TestMatrix(t *testing.T) {
	e := newEnv(t)
	s := e.items[N]
	const missingID = "0000000000000000000000000000000z"
	type endpoint struct {
		method, path string
		body         any
		ok           int
		// missing is the path of the same request for an id that does not
		// exist ("" when the path names a number instead).
		missing string
	}
	eps := []endpoint{
		{"GET", "/api/v1/conversations/" + s.conv, nil, 200, "/api/v1/conversations/" + missingID},
		{"POST", "/api/v1/conversations/" + s.conv + "/state", map[string]string{"state": "done"}, 200, "/api/v1/conversations/" + missingID + "/state"},
		{"POST", "/api/v1/items/" + s.msg + "/comments", map[string]string{"text": "on it"}, 201, "/api/v1/items/" + missingID + "/comments"},
		{"POST", "/api/v1/items/" + s.vm + "/comments", map[string]string{"text": "called back"}, 201, "/api/v1/items/" + missingID + "/comments"},
		{"GET", "/api/v1/calls/" + s.call, nil, 200, "/api/v1/calls/" + missingID},
		{"GET", "/api/v1/voicemail/" + s.vm + "/audio", nil, 200, "/api/v1/voicemail/" + missingID + "/audio"},
		{"POST", "/api/v1/voicemail/" + s.vm + "/heard", nil, 200, "/api/v1/voicemail/" + missingID + "/heard"},
		{"GET", "/api/v1/conversations?number=" + N, nil, 200, ""},
		{"GET", "/api/v1/calls?number=" + N, nil, 200, ""},
		{"GET", "/api/v1/voicemail?number=" + N, nil, 200, ""},
	}
	clients := map[string]*client{}
	for _, u := range []string{"nora", "nadia", "mo", "mia", "olga", "adam"} {
		clients[u] = e.login(u)
	}
	for _, ep := range eps {
		for user, c := range clients {
			name := user + " " + ep.method + " " + ep.path
			r := c.do(ep.method, ep.path, ep.body)
			switch user {
			case "nora", "nadia", "mo":
				if r.status != ep.ok {
					t.Errorf("%s: %d %s", name, r.status, r)
				}
			case "mia":
				want := reply{status: 404}
				if ep.missing != "" {
					want = c.do(ep.method, ep.missing, ep.body)
					want.body = strings.ReplaceAll(want.body, missingID, idOf(ep.path))
				} else {
					want = c.do(ep.method, strings.Replace(ep.path, N, "+15559999999", 1), nil)
					want.body = strings.ReplaceAll(want.body, "+15559999999", N)
				}
				if r.status != 404 || r.body != want.body {
					t.Errorf("%s: %d %s, want %d %s (as for a missing one)", name, r.status, r, want.status, want)
				}
			case "olga", "adam":
				if r.status != 403 || !strings.Contains(r.errText(), "add yourself") {
					t.Errorf("%s: %d %s", name, r.status, r)
				}
			}
		}
	}
	// What each sees listed: only their numbers' items.
	for user, want := range map[string][]string{"mo": {N}, "mia": {N2}, "olga": nil, "adam": nil} {
		var convs []admin.ConversationView
		clients[user].do("GET", "/api/v1/conversations", nil).decode(t, &convs)
		var got []string
		for _, c := range convs {
			got = append(got, c.Number)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s's conversations: %v, want %v", user, got, want)
		}
	}
	// Numbers: members see theirs, workspace managers all.
	for user, want := range map[string]int{"mo": 1, "mia": 1, "olga": 2, "adam": 2} {
		var nums []admin.NumberView
		clients[user].do("GET", "/api/v1/numbers", nil).decode(t, &nums)
		if len(nums) != want {
			t.Errorf("%s sees %d numbers, want %d", user, len(nums), want)
		}
	}
	// The refused comments left nothing behind.
	var d admin.ConversationDetail
	clients["mo"].do("GET", "/api/v1/conversations/"+s.conv, nil).decode(t, &d)
	comments := 0
	for _, en := range d.Timeline {
		if en.Kind == inbox.KindComment {
			comments++
			if en.User != "nora" && en.User != "nadia" && en.User != "mo" {
				t.Errorf("a comment by %s", en.User)
			}
		}
	}
	if comments != 6 {
		t.Errorf("%d comments, want 6 (two by each member)", comments)
	}
	opened := map[string]bool{}
	for _, o := range d.OpenedBy {
		opened[o.User] = true
	}
	if !opened["mo"] || !opened["nora"] || opened["mia"] || opened["olga"] {
		t.Errorf("opened by: %+v", d.OpenedBy)
	}
}

// idOf is the id in an item path.
func idOf(path string) string {
	parts := strings.Split(path, "/")
	return parts[4]
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBody = 64 << 10 })
	c := e.login("mo")
	path := "/api/v1/items/" + e.items[N].msg + "/comments"
	for _, tc := range []struct {
		body string
		want string
	}{
		{`{"text": 5}`, `bad JSON: field "text" must be a string, not number`},
		{`{"text": "x", "colour": "red"}`, `bad JSON: unknown field "colour" (not taken here)`},
		{`{}`, `bad JSON: missing field "text"`},
		{`{"text": "x"`, `bad JSON: the body ends inside the object`},
		{`{"text" "x"}`, `bad JSON at byte 9: invalid character '"' after object key`},
		{``, `bad JSON: empty body: send a JSON object`},
		{`["x"]`, `bad JSON: send an object, not array`},
		{`{"text": "x"} {"text": "y"}`, `bad JSON: data after the JSON object`},
	} {
		r := c.do("POST", path, tc.body)
		if r.status != 400 || r.errText() != tc.want {
			t.Errorf("%s: %d %q, want 400 %q", tc.body, r.status, r.errText(), tc.want)
		}
	}
	if r := c.do("POST", "/api/v1/conversations/"+e.items[N].conv+"/state", `{"state": ["done"]}`); r.status != 400 || !strings.Contains(r.errText(), `field "state"`) {
		t.Errorf("state as an array: %d %s", r.status, r)
	}
	// Semantically wrong: the operation's own words, 422.
	if r := c.do("POST", "/api/v1/conversations/"+e.items[N].conv+"/state", `{"state": "archived"}`); r.status != 422 || r.errText() != `invalid: bad state "archived": use open, unread or done` {
		t.Errorf("bad state: %d %s", r.status, r)
	}
	if r := c.do("GET", "/api/v1/conversations?limit=many", nil); r.status != 400 || !strings.Contains(r.errText(), "limit") {
		t.Errorf("limit=many: %d %s", r.status, r)
	}
	if r := c.do("GET", "/api/v1/conversations?limit=20000", nil); r.status != 422 {
		t.Errorf("limit=20000: %d %s", r.status, r)
	}
	// Oversized: with a Content-Length, and streamed without one.
	big := `{"text": "` + strings.Repeat("a", 70<<10) + `"}`
	if r := c.do("POST", path, big); r.status != 413 {
		t.Errorf("oversized body: %d %s", r.status, r)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+path, struct{ *strings.Reader }{strings.NewReader(big)})
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || req.ContentLength != 0 {
		t.Errorf("oversized chunked body: %d", resp.StatusCode)
	}
	// Unknown paths and methods answer in JSON too.
	if r := c.do("GET", "/api/v1/nothing", nil); r.status != 404 || r.errText() == "" {
		t.Errorf("unknown path: %d %s", r.status, r)
	}
	if r := c.do("PUT", "/api/v1/contacts", nil); r.status != 405 || r.header.Get("Allow") == "" || r.errText() == "" {
		t.Errorf("PUT contacts: %d %s", r.status, r)
	}
}

func TestVoicemailAudio(t *testing.T) {
	e := newEnv(t)
	c := e.login("mo")
	r := c.do("GET", "/api/v1/voicemail/"+e.items[N].vm+"/audio", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "audio/wav" || !strings.HasPrefix(r.body, "RIFF") || len(r.body) != 44+4000 {
		t.Fatalf("audio: %d %q %d bytes", r.status, r.header.Get("Content-Type"), len(r.body))
	}
	v, _ := e.box.Voicemail(e.items[N].vm)
	if len(v.HeardBy) != 1 || v.HeardBy[0].User != "mo" {
		t.Fatalf("heard by %+v", v.HeardBy)
	}
	if r := c.do("GET", "/api/v1/voicemail/"+e.items[N].vm+"/audio", nil, "Range", "bytes=0-3"); r.status != 206 || r.body != "RIFF" {
		t.Fatalf("range: %d %q", r.status, r.body)
	}
	var list []inbox.Voicemail
	e.login("nora").do("POST", "/api/v1/voicemail/"+e.items[N].vm+"/heard", nil)
	c.do("GET", "/api/v1/voicemail?number="+N, nil).decode(t, &list)
	if len(list) != 1 || len(list[0].HeardBy) != 2 {
		t.Fatalf("voicemail list: %+v", list)
	}
}

func TestMessageSend(t *testing.T) {
	e := newEnv(t)
	c := e.login("mo")
	body := map[string]string{"number": N, "to": "+15557654321", "text": "your order shipped"}
	if r := c.do("POST", "/api/v1/messages", body); r.status != 503 || !strings.Contains(r.errText(), "partyline serve") {
		t.Fatalf("without a SIP server: %d %s", r.status, r)
	}
	var got []string
	e.svc.SendText = func(number, member, to, text string) (inbox.Message, error) {
		got = append(got, number, member, to, text)
		return inbox.Message{ID: "m1", Number: number, Party: to, Direction: "outbound", Member: member, Text: text, Status: inbox.MsgSent}, nil
	}
	r := c.do("POST", "/api/v1/messages", body)
	if r.status != 201 || strings.Join(got, "|") != N+"|mo|+15557654321|your order shipped" || !strings.Contains(r.body, `"member":"mo"`) {
		t.Fatalf("send: %d %s %v", r.status, r, got)
	}
	if r := e.login("mia").do("POST", "/api/v1/messages", body); r.status != 404 || r.errText() != `not found: unknown number `+N+`: see "partyline number list"` {
		t.Fatalf("a non-member sends as N: %d %s", r.status, r)
	}
	e.svc.SendText = func(number, member, to, text string) (inbox.Message, error) {
		return inbox.Message{ID: "m2", Status: inbox.MsgFailed, StatusCode: 403}, nil
	}
	if r := c.do("POST", "/api/v1/messages", body); r.status != 502 || !strings.Contains(r.errText(), "the trunk answered 403") {
		t.Fatalf("refused by the trunk: %d %s", r.status, r)
	}
	if r := c.do("POST", "/api/v1/messages", map[string]string{"number": N, "text": "x"}); r.status != 400 || r.errText() != `bad JSON: missing field "to"` {
		t.Fatalf("no to: %d %s", r.status, r)
	}
}

func TestContacts(t *testing.T) {
	e := newEnv(t)
	c := e.bearer("mia")
	r := c.do("POST", "/api/v1/contacts", map[string]any{"name": "Grace Hopper", "phones": []string{"+1 555 000 1111"}, "company": "Navy"})
	var added inbox.Contact
	r.decode(t, &added)
	if r.status != 201 || added.ID == "" || added.Phones[0] != "+15550001111" {
		t.Fatalf("add: %d %s", r.status, r)
	}
	if r := c.do("POST", "/api/v1/contacts", map[string]any{"name": "Other", "phones": []string{"+15550001111"}}); r.status != 409 {
		t.Fatalf("same phone again: %d %s", r.status, r)
	}
	if r := c.do("POST", "/api/v1/contacts", map[string]any{"name": "Nobody"}); r.status != 422 || !strings.Contains(r.errText(), "no phone") {
		t.Fatalf("no phone: %d %s", r.status, r)
	}
	var list []inbox.Contact
	e.login("mo").do("GET", "/api/v1/contacts", nil).decode(t, &list)
	if len(list) != 1 || list[0].Name != "Grace Hopper" {
		t.Fatalf("list: %+v", list)
	}
}

// TestConversationsPaging: before= gives the conversations after the last
// one seen, newest item first.
func TestConversationsPaging(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 5; i++ {
		m := inbox.Message{ID: e.box.NewID(), Number: N, Party: "+1555700000" + string(rune('0'+i)), Direction: "inbound", Text: "hi",
			ContentType: "text/plain", At: e.clock.Now(), Status: inbox.MsgReceived}
		if err := e.box.SaveMessage(&m); err != nil {
			t.Fatal(err)
		}
	}
	c := e.login("mo")
	var all []admin.ConversationView
	c.do("GET", "/api/v1/conversations?number="+N, nil).decode(t, &all)
	if len(all) != 6 {
		t.Fatalf("%d conversations", len(all))
	}
	var got []string
	before := ""
	for range 4 {
		var page []admin.ConversationView
		r := c.do("GET", "/api/v1/conversations?number="+N+"&limit=2&before="+before, nil)
		r.decode(t, &page)
		if len(page) == 0 {
			break
		}
		for _, p := range page {
			got = append(got, p.ID)
		}
		before = page[len(page)-1].LastItem
	}
	var want []string
	for _, a := range all {
		want = append(want, a.ID)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pages %v, want %v", got, want)
	}
	raw, _ := json.Marshal(all[0])
	if !strings.Contains(string(raw), `"unread":true`) {
		t.Errorf("view: %s", raw)
	}
}

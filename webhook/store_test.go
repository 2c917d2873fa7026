package webhook

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline/inbox"
)

func TestAddRefusesBadInput(t *testing.T) {
	w := newWorkspace(t, newTestClock())
	for _, tc := range []struct {
		url    string
		events []string
		want   string
	}{
		{"ftp://example.com/x", []string{inbox.EventCallRinging}, "http:// or https://"},
		{"https://", []string{inbox.EventCallRinging}, "with a host"},
		{"https://user:pw@example.com/", []string{inbox.EventCallRinging}, "no user name or password"},
		{"https://example.com/", []string{"call.rang"}, `unknown event "call.rang"`},
		{"https://example.com/", nil, "name the events"},
	} {
		if _, err := w.hooks.Add(tc.url, tc.events, "", 0); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%q, %v) = %v, want ErrInvalid saying %q", tc.url, tc.events, err, tc.want)
		}
	}
	h, err := w.hooks.Add("https://example.com/in", []string{" call.ringing", inbox.EventCallCompleted, inbox.EventCallRinging}, numA, 7)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(h.Events, ",") != "call.ringing,call.completed" || h.Number != numA || h.After != 7 {
		t.Fatalf("added %+v", h)
	}
	h2, _ := w.hooks.Add("https://example.com/other", []string{inbox.EventCallRinging}, "", 0)
	if hs, _ := w.hooks.Hooks(); len(hs) != 2 || hs[0].ID != h.ID || hs[1].ID != h2.ID || hs[0].Secret == hs[1].Secret {
		t.Fatalf("hooks %+v", hs)
	}
	if _, err := w.hooks.Remove("wh99"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove(wh99) = %v", err)
	}
}

// TestQueueBounded: beyond QueueLimit events are dropped, each recorded;
// a webhook remembers its last KeepAttempts attempts.
func TestQueueBounded(t *testing.T) {
	clock := newTestClock()
	w := newWorkspace(t, clock)
	w.hooks.QueueLimit, w.hooks.KeepAttempts = 3, 4
	h, err := w.hooks.Add("http://127.0.0.1:1/", []string{inbox.EventMessageReceived}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		w.text(numA, "text "+strconv.Itoa(i))
	}
	evs, _ := w.box.Feed(0, 0)
	if _, err := w.hooks.enqueue(evs, evs[len(evs)-1].Seq, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n, _ := w.hooks.Pending(h.ID); n != 3 {
		t.Fatalf("%d pending, want 3", n)
	}
	as, _ := w.hooks.Attempts(h.ID, 0)
	if len(as) != 3 || as[0].Outcome != Dropped || !strings.Contains(as[0].Error, "queue full") {
		t.Fatalf("attempts %+v", as)
	}
	for range 3 {
		e, ok, err := w.hooks.head(h.ID)
		if !ok || err != nil {
			t.Fatal(ok, err)
		}
		if err := w.hooks.settle(h.ID, e, &Attempt{Event: strconv.FormatUint(e.Seq, 10), Outcome: Delivered}); err != nil {
			t.Fatal(err)
		}
	}
	if as, _ := w.hooks.Attempts(h.ID, 0); len(as) != 4 || as[0].Outcome != Delivered || as[3].Outcome != Dropped {
		t.Fatalf("kept %+v, want the newest 4", as)
	}
	if n, _ := w.hooks.Pending(h.ID); n != 0 {
		t.Fatalf("%d pending", n)
	}
	if c, _ := w.hooks.Cursor(); c != evs[len(evs)-1].Seq {
		t.Fatalf("cursor %d", c)
	}
}

func TestVerify(t *testing.T) {
	const secret = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	at := time.Unix(1700000000, 0)
	body := []byte(`{"id":"1"}`)
	sig := Sign(secret, at, body)
	if !strings.HasPrefix(sig, "t=1700000000,v1=") || len(sig) != len("t=1700000000,v1=")+64 {
		t.Fatalf("signature %q", sig)
	}
	if _, err := Verify(secret, sig, body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		secret, header string
		body           []byte
		now            time.Time
	}{
		"another body":   {secret, sig, []byte(`{"id":"2"}`), at},
		"another secret": {strings.Repeat("0", 64), sig, body, at},
		"too old":        {secret, sig, body, at.Add(time.Hour)},
		"no v1":          {secret, "t=1700000000", body, at},
		"no t":           {secret, sig[strings.Index(sig, "v1="):], body, at},
	} {
		if _, err := Verify(tc.secret, tc.header, tc.body, tc.now, 5*time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Verify = %v", name, err)
		}
	}
}

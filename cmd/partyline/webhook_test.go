package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/webhook"
)

// TestCLIWebhooks: only workspace owners and admins manage webhooks; the
// secret is printed once; the running server POSTs a carrier's text to the
// receiver, signed with it, and "webhook deliveries" shows the attempt.
func TestCLIWebhooks(t *testing.T) {
	dir := seedDir(t)
	ok(t, dir, "trunk", "add", "local", "--address", "127.0.0.1:9", "--allow", "127.0.0.1")

	var mu sync.Mutex
	var secret string
	var got []webhook.Body
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if _, err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("signature of %s: %v", body, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var b webhook.Body
		json.Unmarshal(body, &b)
		got = append(got, b)
	}))
	defer rcv.Close()

	events := inbox.EventMessageReceived + "," + inbox.EventCallCompleted
	if r := cli(t, dir, "--as", "nora", "webhook", "add", rcv.URL, "--events", events); r.code != 1 || !strings.Contains(r.err, "only workspace owners and admins") {
		t.Fatalf("a number owner adds a webhook: %s", r)
	}
	if r := cli(t, dir, "webhook", "add", rcv.URL); r.code != 2 {
		t.Fatalf("no --events: %s", r)
	}
	if r := cli(t, dir, "webhook", "add", rcv.URL, "--events", "call.rang"); r.code != 1 || !strings.Contains(r.err, `unknown event "call.rang"`) {
		t.Fatalf("unknown event: %s", r)
	}
	out := ok(t, dir, "--as", "adam", "webhook", "add", rcv.URL, "--events", events, "--number", "+1 555 123 0001")
	m := regexp.MustCompile(`(?m)^added webhook (wh\d+): .*\n.*shown only now.*\n([0-9a-f]{64})$`).FindStringSubmatch(strings.TrimSpace(out))
	if m == nil {
		t.Fatalf("webhook add printed %q", out)
	}
	id := m[1]
	mu.Lock()
	secret = m[2]
	mu.Unlock()
	if list := ok(t, dir, "webhook", "list"); !strings.Contains(list, id) || !strings.Contains(list, "+15551230001") || strings.Contains(list, secret) {
		t.Fatalf("webhook list:\n%s", list)
	}

	srv := startServer(t, dir)
	addr := regexp.MustCompile(`\bsip=(127\.0\.0\.1:\d+)`).FindStringSubmatch(srv.await(t, `msg="partyline ready"`))
	if addr == nil {
		t.Fatalf("no sip= in the ready line:\n%s", srv.logText())
	}
	carrierText(t, addr[1], "+15551230001", "Is the shop open on Saturday?")
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no webhook request within 10 s:\n%s", srv.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	b := got[0]
	mu.Unlock()
	var md inbox.MessageData
	if b.Type != inbox.EventMessageReceived || b.Number != "+15551230001" || json.Unmarshal(b.Data, &md) != nil ||
		md.Text != "Is the shop open on Saturday?" || md.Party != "+15557654321" {
		t.Fatalf("webhook got %+v", b)
	}
	var d admin.WebhookDeliveries
	if err := json.Unmarshal([]byte(ok(t, dir, "-o", "json", "--as", "olga", "webhook", "deliveries", id)), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Attempts) != 1 || d.Attempts[0].Outcome != webhook.Delivered || d.Attempts[0].Status != 200 || d.Attempts[0].Event != b.ID {
		t.Fatalf("deliveries %+v", d)
	}
	if r := cli(t, dir, "--as", "mia", "webhook", "deliveries", id); r.code != 1 || !strings.HasPrefix(r.err, "partyline: refused: ") {
		t.Fatalf("a member reads deliveries: %s", r)
	}
	if out := ok(t, dir, "webhook", "remove", id); !strings.Contains(out, "removed webhook "+id) {
		t.Fatalf("remove: %q", out)
	}
	if err := srv.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("server exit: %v\n%s", err, srv.logText())
	}
}

// carrierText sends a text to number from the trusted trunk address
// 127.0.0.1, as a carrier does, and waits for the 200.
func carrierText(t *testing.T, sipAddr, number, text string) {
	t.Helper()
	conn, err := net.Dial("udp", sipAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	msg := fmt.Sprintf("MESSAGE sip:%[1]s@%[2]s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %[3]s;branch=z9hG4bK-webhook-test\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:+15557654321@carrier.test>;tag=webhooktest\r\n"+
		"To: <sip:%[1]s@%[2]s>\r\n"+
		"Call-ID: webhook-test@carrier.test\r\n"+
		"CSeq: 1 MESSAGE\r\n"+
		"Content-Type: text/plain;charset=UTF-8\r\n"+
		"Content-Length: %[4]d\r\n\r\n%[5]s", number, sipAddr, local, len(text), text)
	buf := make([]byte, 4096)
	for try := 0; try < 5; try++ {
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
			return
		}
	}
	t.Fatalf("the server did not answer the carrier's text with 200")
}

package sip

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// rawRegister is a REGISTER for user from p, with auth (a whole header
// line, or "") and a Call-ID and CSeq of the caller's choosing.
func rawRegister(e *env, p *rawPeer, user, callID string, cseq int, auth string) string {
	if auth != "" {
		auth += "\r\n"
	}
	return fmt.Sprintf("REGISTER sip:%s SIP/2.0\r\n%s\r\nFrom: <sip:%s@%s>;tag=r%d\r\nTo: <sip:%s@%s>\r\nCall-ID: %s\r\nCSeq: %d REGISTER\r\n"+
		"Max-Forwards: 70\r\nContact: <sip:%s@%s>\r\nExpires: 600\r\n%sContent-Length: 0\r\n\r\n",
		e.addr, p.via(), user, testRealm, cseq, user, testRealm, callID, cseq, user, p.local, auth)
}

// rawMessage is a MESSAGE from p to ruri, as user, with auth (a whole
// header line, or "").
func rawMessage(p *rawPeer, ruri, user, callID string, cseq int, body, auth string) string {
	if auth != "" {
		auth += "\r\n"
	}
	return fmt.Sprintf("MESSAGE %s SIP/2.0\r\n%s\r\nFrom: <sip:%s@%s>;tag=m%d\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: %d MESSAGE\r\n"+
		"Max-Forwards: 70\r\nContent-Type: text/plain\r\n%sContent-Length: %d\r\n\r\n%s",
		ruri, p.via(), user, testRealm, cseq, ruri, callID, cseq, auth, len(body), body)
}

// TestTrunkNeverBanned performs finding 3: REGISTERs with junk credentials
// from a trunk's address (anyone can spoof its source over UDP) count
// nothing and ban nothing; the carrier's texts still arrive. Wrong
// passwords from a phone on the same IP but another port ban that user
// from that IP, never the trunk.
func TestTrunkNeverBanned(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice")
	carrier := newTrunkPeer(t, e)
	junk := `Authorization: Digest username="", realm="test.example", nonce="x", uri="sip:x", response="0"`
	for i := range 12 {
		carrier.send(e, rawRegister(e, carrier, "alice", fmt.Sprintf("junk-%d", i), 1, junk))
		if res := carrier.final(fmt.Sprintf("junk-%d", i), 2*time.Second); statusCode(res) != 401 {
			t.Fatalf("junk REGISTER %d: %q", i, res)
		}
	}
	if n := e.srv.Stats().AuthFailures; n != 0 {
		t.Fatalf("junk credentials counted %d failures", n)
	}
	// Wrong passwords with our nonces, from the trunk's IP but another
	// port: that user from that IP is banned; the trunk is not.
	phone := newRawPeer(t, e, "UDP", "127.0.0.3")
	for i := range 8 {
		id := fmt.Sprintf("wrong-%d", i)
		phone.send(e, rawRegister(e, phone, "alice", id, 1, ""))
		chal := phone.final(id, 2*time.Second)
		if statusCode(chal) != 401 {
			if i > e.srv.BanThreshold {
				break // banned: silence
			}
			t.Fatalf("attempt %d: %q", i, chal)
		}
		phone.send(e, rawRegister(e, phone, "alice", id, 2, strings.Replace(authorize(t, chal, "REGISTER", "sip:"+e.addr.String(), "alice", 1), `response="`, `response="f`, 1)))
		phone.final(id, time.Second)
	}
	if e.srv.Stats().AuthFailures == 0 {
		t.Fatal("wrong passwords counted nothing")
	}
	id := "after-ban"
	phone.send(e, rawRegister(e, phone, "alice", id, 1, ""))
	if res := phone.final(id, time.Second); res != "" {
		t.Fatalf("alice from the banned source got %q", res)
	}
	// bob behind the same address is not locked out,
	bob := newRawPeer(t, e, "UDP", "127.0.0.3")
	bob.send(e, rawRegister(e, bob, "bob", "bob-1", 1, ""))
	chal := bob.final("bob-1", 2*time.Second)
	bob.send(e, rawRegister(e, bob, "bob", "bob-1", 2, authorize(t, chal, "REGISTER", "sip:"+e.addr.String(), "bob", 1)))
	if res := bob.final("bob-1", 2*time.Second); statusCode(res) != 200 {
		t.Fatalf("bob from the same address: %q", res)
	}
	// and the carrier's text is stored and answered.
	carrier.send(e, message("+15550001111", 0, testNumber))
	if res := carrier.await(3*time.Second, func(m string) bool { return statusCode(m) >= 200 }); statusCode(res) != 200 {
		t.Fatalf("the carrier's text after the attack: %q", res)
	}
	if !strings.Contains(e.log.String(), "event=auth_ban src=127.0.0.3 user=alice") {
		t.Fatalf("no security line for alice's ban:\n%s", e.log.String())
	}
	e.noPanics()
}

// TestDigestReplay performs finding 4: a member's Proxy-Authorization,
// captured from one text, sent again from another address, to another
// destination, with another Call-ID and body, or unchanged with its nonce
// count used up, is refused; the member's own next request (nc+1) passes.
func TestDigestReplay(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	bob := newDevice(t, e, "bob", "udp")
	alice := newRawPeer(t, e, "UDP", "127.0.0.1")
	ruri := fmt.Sprintf("sip:bob@%s", e.addr)
	alice.send(e, rawMessage(alice, ruri, "alice", "orig", 1, "hi", ""))
	chal := alice.final("orig", 2*time.Second)
	if statusCode(chal) != 407 {
		t.Fatalf("want 407, got %q", chal)
	}
	cred := authorize(t, chal, "MESSAGE", ruri, "alice", 1)
	alice.send(e, rawMessage(alice, ruri, "alice", "orig", 2, "hi", cred))
	if res := alice.final("orig", 3*time.Second); statusCode(res) != 200 {
		t.Fatalf("alice's own text: %q", res)
	}
	recv(t, bob.messages, "bob's text")

	mallory := newRawPeer(t, e, "UDP", "127.0.0.2")
	other := fmt.Sprintf("sip:+15550009999@%s", e.addr)
	replays := []struct {
		name string
		from *rawPeer
		msg  string
	}{
		{"from another address", mallory, rawMessage(mallory, ruri, "alice", "r1", 1, "pay me", cred)},
		{"to another destination", alice, rawMessage(alice, other, "alice", "r2", 1, "pay me", cred)},
		{"as it was, count used up", alice, rawMessage(alice, ruri, "alice", "r3", 1, "pay me", cred)},
	}
	for _, r := range replays {
		id := headerValue(r.msg, "Call-ID")
		r.from.send(e, r.msg)
		res := r.from.final(id, 3*time.Second)
		if statusCode(res) != 407 {
			t.Fatalf("replay %s: want 407, got %q", r.name, res)
		}
		if r.name == "as it was, count used up" && !strings.Contains(headerValue(res, "Proxy-Authenticate"), "stale=true") {
			t.Errorf("replay %s: want stale=true:\n%s", r.name, res)
		}
	}
	select {
	case m := <-bob.messages:
		t.Fatalf("a replay reached bob:\n%s", m)
	default:
	}
	// The same nonce with the next count is alice's phone going on.
	alice.send(e, rawMessage(alice, ruri, "alice", "next", 1, "again", authorize(t, chal, "MESSAGE", ruri, "alice", 2)))
	if res := alice.final("next", 3*time.Second); statusCode(res) != 200 {
		t.Fatalf("alice's next text with nc=2: %q", res)
	}
	e.noPanics()
}

// TestUserIdentityEnforced performs finding 5 for calls (texts: see
// TestForgedHeadersEverySpelling): alice's INVITE to bob that claims to be
// the shared number rings bob as alice, with our P-Asserted-Identity only.
func TestUserIdentityEnforced(t *testing.T) {
	e := newEnv(t, nil)
	numberWith(t, e, "alice", "bob")
	bob := newDevice(t, e, "bob", "udp")
	alice := newRawPeer(t, e, "UDP", "127.0.0.1")
	ruri := fmt.Sprintf("sip:bob@%s", e.addr)
	invite := func(cseq int, auth string) string {
		if auth != "" {
			auth += "\r\n"
		}
		return fmt.Sprintf("INVITE %s SIP/2.0\r\n%s\r\nFrom: \"Support\" <sip:%s@%s>;tag=i1\r\nTo: <%s>\r\nCall-ID: spoof\r\nCSeq: %d INVITE\r\n"+
			"Max-Forwards: 70\r\nContact: <sip:alice@%s>\r\nP-Asserted-Identity: \"CEO Olga\" <sip:olga@%s>\r\nP-Preferred-Identity: <sip:olga@%s>\r\n%sContent-Length: 0\r\n\r\n",
			ruri, alice.via(), testNumber, testRealm, ruri, cseq, alice.local, testRealm, testRealm, auth)
	}
	alice.send(e, invite(1, ""))
	chal := alice.final("spoof", 2*time.Second)
	if statusCode(chal) != 407 {
		t.Fatalf("want 407, got %q", chal)
	}
	alice.send(e, invite(2, authorize(t, chal, "INVITE", ruri, "alice", 1)))
	got := recv(t, bob.invites, "bob's INVITE")
	if u, d := got.From().Address.User, got.From().DisplayName; u != "alice" || d != "alice" {
		t.Errorf("bob's phone rings from %q <%s>, want alice", d, u)
	}
	if h := carriesForged(got.String(), "<sip:alice@"+testRealm+">"); h != "" {
		t.Errorf("bob's phone got %s", h)
	}
	if pai := headerValues(got.String(), "P-Asserted-Identity"); len(pai) != 1 {
		t.Errorf("want our one P-Asserted-Identity, got %q", pai)
	}
	bob.answer <- 486
	if res := alice.final("spoof", 3*time.Second); statusCode(res) < 400 {
		t.Fatalf("alice's call: %q", res)
	}
	e.noPanics()
}

// TestChallengeStateless performs finding 7: an INVITE without
// credentials gets one 407, sent once and never retransmitted (no
// transaction kept); one over MaxUnauthenticated gets 413 without a
// nonce; a source that floods us with them is banned and logged once.
func TestChallengeStateless(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.UnprovenBurst, s.UnprovenRate = 20, 1 })
	numberWith(t, e, "alice", "bob")
	p := newRawPeer(t, e, "UDP", "127.0.0.2")
	inv := func(id, pad string) string {
		return fmt.Sprintf("INVITE sip:bob@%s SIP/2.0\r\n%s\r\nFrom: <sip:alice@%s>;tag=x\r\nTo: <sip:bob@%s>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\n"+
			"Max-Forwards: 70\r\nX-Pad: %s\r\nContent-Length: 0\r\n\r\n", e.addr, p.via(), testRealm, testRealm, id, pad)
	}
	p.send(e, inv("one", ""))
	if res := p.final("one", 2*time.Second); statusCode(res) != 407 {
		t.Fatalf("want 407, got %q", res)
	}
	// A transaction would resend its 407 after T1 (500 ms), 1 s, 2 s...
	if again := p.final("one", 1200*time.Millisecond); again != "" {
		t.Fatalf("the 407 came again (a transaction was kept):\n%s", again)
	}
	p.send(e, inv("big", strings.Repeat("a", 20<<10)))
	if res := p.final("big", 2*time.Second); statusCode(res) != 413 || strings.Contains(res, "nonce") {
		t.Fatalf("oversized unauthenticated INVITE: want 413 without a challenge, got %q", res)
	}
	// The rest of the burst, then silence and a ban.
	answered := 2
	for i := range 40 {
		id := fmt.Sprintf("flood-%d", i)
		p.send(e, inv(id, ""))
		if p.final(id, 500*time.Millisecond) == "" {
			break
		}
		answered++
	}
	if answered > 21 {
		t.Fatalf("%d requests without credentials answered; the burst is 20", answered)
	}
	if !strings.Contains(e.log.String(), "event=flood_ban src=127.0.0.2") {
		t.Fatalf("no security line for the flood:\n%s", e.log.String())
	}
	if !e.srv.bans.Banned(p.udp.LocalAddr().(*net.UDPAddr).AddrPort().Addr(), "", e.srv.Now()) {
		t.Fatal("the flooding source is not banned")
	}
	// Another source is served.
	q := newRawPeer(t, e, "UDP", "127.0.0.1")
	q.send(e, strings.Replace(inv("other", ""), p.local, q.local, 1))
	if res := q.final("other", 2*time.Second); statusCode(res) != 407 {
		t.Fatalf("another source: %q", res)
	}
	e.noPanics()
}

// TestDigestURIServer: with DigestURIServer, credentials computed over
// the server's own address (as SIPp sends them) pass; over another
// destination they still fail. Without it, only the Request-URI passes.
func TestDigestURIServer(t *testing.T) {
	for _, lenient := range []bool{false, true} {
		e := newEnv(t, func(s *Server) { s.DigestURIServer = lenient })
		numberWith(t, e, "alice", "bob")
		newDevice(t, e, "bob", "udp")
		alice := newRawPeer(t, e, "UDP", "127.0.0.1")
		ruri := fmt.Sprintf("sip:bob@%s", e.addr)
		for i, uri := range []string{"sip:" + e.addr.String(), fmt.Sprintf("sip:+15550009999@%s", e.addr)} {
			id := fmt.Sprintf("uri-%v-%d", lenient, i)
			alice.send(e, rawMessage(alice, ruri, "alice", id, 1, "hi", ""))
			chal := alice.final(id, 2*time.Second)
			alice.send(e, rawMessage(alice, ruri, "alice", id, 2, "hi", authorize(t, chal, "MESSAGE", uri, "alice", 1)))
			want := 407
			if lenient && i == 0 {
				want = 200
			}
			if res := alice.final(id, 3*time.Second); statusCode(res) != want {
				t.Errorf("lenient=%v, uri %s: want %d, got %q", lenient, uri, want, res)
			}
		}
	}
}

package sip

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// phone is a sipgo client that registers like a desk phone.
type phone struct {
	t         *testing.T
	e         *env
	c         *sipgo.Client
	transport string
	user, pw  string
	callID    string
	cseq      uint32
}

func newPhone(t *testing.T, e *env, transport, user, pw string) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("testphone/1.0"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); ua.Close() })
	return &phone{t: t, e: e, c: c, transport: transport, user: user, pw: pw,
		callID: fmt.Sprintf("%s-%s-%d@test", user, transport, time.Now().UnixNano())}
}

// request builds a REGISTER; expires < 0 leaves the Expires header out.
func (p *phone) request(contacts []string, expires int) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(p.e.addr.Port())})
	aor := sip.Uri{Scheme: "sip", User: p.user, Host: testRealm}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", "t"+p.callID[:8])
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	callID := sip.CallIDHeader(p.callID)
	req.AppendHeader(&callID)
	p.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.cseq, MethodName: sip.REGISTER})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	for _, c := range contacts {
		req.AppendHeader(sip.NewHeader("Contact", c))
	}
	if expires >= 0 {
		req.AppendHeader(sip.NewHeader("Expires", fmt.Sprint(expires)))
	}
	req.AppendHeader(sip.NewHeader("User-Agent", "testphone/1.0"))
	req.SetTransport(p.transport)
	req.SetDestination(p.e.addr.String())
	return req
}

// do sends req and returns the final response.
func (p *phone) do(req *sip.Request) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.c.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("%s over %s: %v", req.Method, p.transport, err)
	}
	return res
}

// register sends a REGISTER, answers the challenge with algorithm alg
// (MD5 or SHA-256) and returns the final response.
func (p *phone) register(contacts []string, expires int, alg string) *sip.Response {
	p.t.Helper()
	res := p.do(p.request(contacts, expires))
	if res.StatusCode != 401 {
		return res
	}
	req := p.request(contacts, expires)
	p.authorize(req, res, alg)
	return p.do(req)
}

func (p *phone) authorize(req *sip.Request, res *sip.Response, alg string) {
	p.t.Helper()
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil {
			p.t.Fatalf("bad challenge %q: %v", h.Value(), err)
		}
		if chal.Algorithm != alg {
			continue
		}
		cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: req.Recipient.String(), Username: p.user, Password: p.pw})
		if err != nil {
			p.t.Fatal(err)
		}
		req.AppendHeader(sip.NewHeader("Authorization", cred.String()))
		return
	}
	p.t.Fatalf("no %s challenge in %s", alg, res.StartLine())
}

func contactsOf(res *sip.Response) map[string]string {
	out := map[string]string{}
	for _, h := range res.GetHeaders("Contact") {
		c := h.(*sip.ContactHeader)
		v, _ := c.Params.Get("expires")
		out[c.Address.String()] = v
	}
	return out
}

func TestRegister(t *testing.T) {
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			e := newEnv(t, nil)
			p := newPhone(t, e, transport, "alice", "secret-alice")

			// A challenge offers MD5 first, then SHA-256, both qop=auth.
			res := p.do(p.request([]string{"<sip:alice@127.0.0.1:7001>"}, 600))
			chals := res.GetHeaders("WWW-Authenticate")
			if res.StatusCode != 401 || len(chals) != 2 || !strings.Contains(chals[0].Value(), "algorithm=MD5") ||
				!strings.Contains(chals[1].Value(), "algorithm=SHA-256") || !strings.Contains(chals[1].Value(), `qop="auth"`) {
				t.Fatalf("challenge: %s", res)
			}

			res = p.register([]string{"<sip:alice@127.0.0.1:7001>"}, 600, "MD5")
			if res.StatusCode != 200 || contactsOf(res)["sip:alice@127.0.0.1:7001"] != "600" {
				t.Fatalf("register: %s", res)
			}
			b := e.loc.Lookup("alice")
			if len(b) != 1 || b[0].Transport != strings.ToLower(transport) || b[0].UserAgent != "testphone/1.0" || !strings.HasPrefix(b[0].Source, "127.0.0.1:") {
				t.Fatalf("binding %+v", b)
			}

			// Refresh with SHA-256, 30 s later: same binding, new expiry.
			e.clock.Advance(30 * time.Second)
			res = p.register([]string{"<sip:alice@127.0.0.1:7001>"}, 600, "SHA-256")
			if res.StatusCode != 200 || len(contactsOf(res)) != 1 || contactsOf(res)["sip:alice@127.0.0.1:7001"] != "600" {
				t.Fatalf("refresh: %s", res)
			}

			// A second device; the answer lists both with their remaining time.
			e.clock.Advance(100 * time.Second)
			res = p.register([]string{"<sip:alice@127.0.0.1:7002>;expires=3600"}, -1, "MD5")
			got := contactsOf(res)
			if res.StatusCode != 200 || got["sip:alice@127.0.0.1:7001"] != "500" || got["sip:alice@127.0.0.1:7002"] != "3600" {
				t.Fatalf("second device: %s", res)
			}

			// Too brief → 423 with Min-Expires; too long is clamped.
			res = p.register([]string{"<sip:alice@127.0.0.1:7003>"}, 30, "MD5")
			if res.StatusCode != 423 || res.GetHeader("Min-Expires").Value() != "60" {
				t.Fatalf("423: %s", res)
			}
			res = p.register([]string{"<sip:alice@127.0.0.1:7003>"}, 99999, "MD5")
			if res.StatusCode != 200 || contactsOf(res)["sip:alice@127.0.0.1:7003"] != "7200" {
				t.Fatalf("clamp: %s", res)
			}

			// Unregister one, then all.
			res = p.register([]string{"<sip:alice@127.0.0.1:7002>;expires=0"}, -1, "MD5")
			if res.StatusCode != 200 || len(contactsOf(res)) != 2 {
				t.Fatalf("unregister one: %s", res)
			}
			res = p.register([]string{"*"}, 0, "MD5")
			if res.StatusCode != 200 || len(contactsOf(res)) != 0 || len(e.loc.Lookup("alice")) != 0 {
				t.Fatalf("unregister all: %s", res)
			}
			// Contact: * without Expires: 0 is refused.
			if res = p.register([]string{"*"}, 60, "MD5"); res.StatusCode != 400 {
				t.Fatalf("bad wildcard: %s", res)
			}
			e.noPanics()
		})
	}
}

func TestRegisterMaxDevicesReplacesOldest(t *testing.T) {
	e := newEnv(t, nil)
	p := newPhone(t, e, "UDP", "bob", "secret-bob")
	for i := 1; i <= 6; i++ {
		e.clock.Advance(time.Second)
		res := p.register([]string{fmt.Sprintf("<sip:bob@127.0.0.1:%d>", 7000+i)}, 600, "MD5")
		if res.StatusCode != 200 {
			t.Fatalf("device %d: %s", i, res)
		}
	}
	got := contactsOf(p.register(nil, -1, "MD5")) // a query
	if len(got) != 5 {
		t.Fatalf("want 5 bindings, got %v", got)
	}
	if _, ok := got["sip:bob@127.0.0.1:7001"]; ok {
		t.Fatalf("the oldest binding should have been replaced: %v", got)
	}
}

// TestUnknownUserLooksLikeWrongPassword: both get the same fresh
// challenge, with nothing that tells them apart.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	e := newEnv(t, nil)
	shape := func(user, pw string) string {
		p := newPhone(t, e, "UDP", user, pw)
		res := p.register([]string{"<sip:x@127.0.0.1:7001>"}, 600, "MD5")
		var hs []string
		for _, h := range res.Headers() {
			switch h.Name() {
			case "Via", "From", "To", "Call-ID", "CSeq":
				continue
			case "WWW-Authenticate":
				c, _ := digest.ParseChallenge(h.Value())
				hs = append(hs, fmt.Sprintf("%s realm=%s alg=%s stale=%v qop=%v", h.Name(), c.Realm, c.Algorithm, c.Stale, c.QOP))
				continue
			}
			hs = append(hs, h.Name()+": "+h.Value())
		}
		return res.StartLine() + "\n" + strings.Join(hs, "\n")
	}
	wrong := shape("alice", "not-her-password")
	unknown := shape("mallory", "whatever-password")
	if wrong != unknown || !strings.HasPrefix(wrong, "SIP/2.0 401") {
		t.Fatalf("wrong password:\n%s\nunknown user:\n%s", wrong, unknown)
	}
	if len(e.loc.Lookup("alice")) != 0 || len(e.loc.Lookup("mallory")) != 0 {
		t.Fatal("a failed authentication stored a binding")
	}
}

// TestRegisterForAnotherUserForbidden: alice's credentials do not register bob.
func TestRegisterForAnotherUserForbidden(t *testing.T) {
	e := newEnv(t, nil)
	p := newPhone(t, e, "UDP", "bob", "secret-bob")
	req := p.request([]string{"<sip:bob@127.0.0.1:7001>"}, 600)
	res := p.do(req)
	req = p.request([]string{"<sip:bob@127.0.0.1:7001>"}, 600)
	alice := &phone{t: t, e: e, user: "alice", pw: "secret-alice"}
	alice.authorize(req, res, "MD5")
	if res = p.do(req); res.StatusCode != 403 || len(e.loc.Lookup("bob")) != 0 {
		t.Fatalf("got %s", res)
	}
}

func TestStaleNonce(t *testing.T) {
	e := newEnv(t, nil)
	p := newPhone(t, e, "UDP", "alice", "secret-alice")
	res := p.do(p.request([]string{"<sip:alice@127.0.0.1:7001>"}, 600))
	e.clock.Advance(6 * time.Minute)
	req := p.request([]string{"<sip:alice@127.0.0.1:7001>"}, 600)
	p.authorize(req, res, "MD5")
	res = p.do(req)
	c, _ := digest.ParseChallenge(res.GetHeader("WWW-Authenticate").Value())
	if res.StatusCode != 401 || !c.Stale {
		t.Fatalf("expired nonce: want 401 stale=true, got %s", res)
	}
	if e.srv.Stats().AuthFailures != 0 {
		t.Fatal("a stale nonce with the right password counted as a failure")
	}
}

func TestOutOfOrderCSeq(t *testing.T) {
	e := newEnv(t, nil)
	p := newPhone(t, e, "UDP", "alice", "secret-alice")
	p.cseq = 10
	if res := p.register([]string{"<sip:alice@127.0.0.1:7001>"}, 600, "MD5"); res.StatusCode != 200 {
		t.Fatal(res)
	}
	p.cseq = 3 // same Call-ID, older CSeq
	if res := p.register([]string{"<sip:alice@127.0.0.1:7001>"}, 0, "MD5"); res.StatusCode != 400 || len(e.loc.Lookup("alice")) != 1 {
		t.Fatalf("older CSeq must not change the binding: %s", res)
	}
}

func TestBanAfterRepeatedFailures(t *testing.T) {
	e := newEnv(t, nil)
	p := newPhone(t, e, "UDP", "alice", "wrong-password")
	for i := 0; i < 6; i++ {
		if res := p.register([]string{"<sip:alice@127.0.0.1:7001>"}, 600, "MD5"); res.StatusCode != 401 {
			t.Fatalf("attempt %d: %s", i, res)
		}
	}
	// Now banned: silence, even with the right password, over UDP and TCP.
	for _, tr := range []string{"UDP", "TCP"} {
		good := newPhone(t, e, tr, "alice", "secret-alice")
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		_, err := good.c.Do(ctx, good.request([]string{"<sip:alice@127.0.0.1:7001>"}, 600))
		cancel()
		if err == nil {
			t.Fatalf("%s: banned source got an answer", tr)
		}
	}
	logs := e.log.String()
	if strings.Count(logs, `msg=security event=auth_ban src=127.0.0.1`) != 1 {
		t.Fatalf("want one security log line, got:\n%s", logs)
	}
	if strings.Contains(logs, "wrong-password") || strings.Contains(logs, "secret-alice") {
		t.Fatal("a password reached the log")
	}
	// Five minutes later the source is heard again.
	e.clock.Advance(5*time.Minute + time.Second)
	good := newPhone(t, e, "UDP", "alice", "secret-alice")
	if res := good.register([]string{"<sip:alice@127.0.0.1:7001>"}, 600, "MD5"); res.StatusCode != 200 {
		t.Fatalf("after the ban: %s", res)
	}
}

func TestExpiryAndRestore(t *testing.T) {
	swept := make(chan int, 10)
	configure := func(s *Server) {
		s.SweepEvery = 10 * time.Millisecond
		s.Swept = func(n int) {
			select {
			case swept <- n:
			default:
			}
		}
	}
	e := newEnv(t, configure)
	p := newPhone(t, e, "TCP", "alice", "secret-alice")
	p.register([]string{"<sip:alice@127.0.0.1:7001>"}, 600, "MD5")
	p.register([]string{"<sip:alice@127.0.0.1:7002>"}, 3600, "MD5")

	// Bindings survive a restart.
	e.restart(configure)
	if b := e.loc.Lookup("alice"); len(b) != 2 || b[0].Transport != "tcp" {
		t.Fatalf("after restart: %+v", b)
	}
	// The first expires after 600 s: the sweeper removes it from memory
	// and file.
	e.clock.Advance(601 * time.Second)
	deadline := time.After(10 * time.Second)
	for removed := 0; removed == 0; {
		select {
		case removed = <-swept:
		case <-deadline:
			t.Fatal("no sweep removed the expired binding")
		}
	}
	if e.loc.Count() != 1 {
		t.Fatalf("after sweep: %d bindings held", e.loc.Count())
	}
	e.restart(nil)
	if b := e.loc.Lookup("alice"); len(b) != 1 || b[0].Contact != "sip:alice@127.0.0.1:7002" {
		t.Fatalf("after sweep and restart: %+v", b)
	}
}

func TestOptionsKeepalive(t *testing.T) {
	e := newEnv(t, nil)
	for _, tr := range []string{"UDP", "TCP"} {
		p := newPhone(t, e, tr, "alice", "")
		req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(e.addr.Port())})
		req.SetTransport(tr)
		req.SetDestination(e.addr.String())
		res := p.do(req)
		if res.StatusCode != 200 || !strings.Contains(res.GetHeader("Allow").Value(), "REGISTER") {
			t.Fatalf("%s OPTIONS: %s", tr, res)
		}
	}
}

// TestMD5OnlyForListedAgents: clients known to give up on a SHA-256
// challenge get MD5 alone; everyone else gets both.
func TestMD5OnlyForListedAgents(t *testing.T) {
	e := newEnv(t, nil)
	p := newPhone(t, e, "UDP", "alice", "secret-alice")
	req := p.request([]string{"<sip:alice@127.0.0.1:7001>"}, 600)
	req.RemoveHeader("User-Agent")
	req.AppendHeader(sip.NewHeader("User-Agent", "baresip v1.0.0 (x86_64/linux)"))
	res := p.do(req)
	if chals := res.GetHeaders("WWW-Authenticate"); res.StatusCode != 401 || len(chals) != 1 || !strings.Contains(chals[0].Value(), "algorithm=MD5") {
		t.Fatalf("baresip's challenge: %s", res)
	}
	if chals := p.do(p.request(nil, 600)).GetHeaders("WWW-Authenticate"); len(chals) != 2 {
		t.Fatalf("others get %d challenges", len(chals))
	}
}

package sip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// spellings are the ways a peer may write a header name: lower, upper and
// mixed case, and the compact form where there is one.
var spellings = []string{"lower", "UPPER", "MiXeD", "compact"}

// spell writes name as style says (compact falls back to lower case for
// a header without a compact form).
func spell(name, style string) string {
	switch style {
	case "lower":
		return strings.ToLower(name)
	case "UPPER":
		return strings.ToUpper(name)
	case "MiXeD":
		b := []byte(strings.ToLower(name))
		for i := 0; i < len(b); i += 2 {
			b[i] = strings.ToUpper(string(b[i]))[0]
		}
		return string(b)
	case "compact":
		for short, long := range compactForms {
			if long == strings.ToLower(name) {
				return short
			}
		}
		return strings.ToLower(name)
	}
	panic(style)
}

// stripped are the headers a request from outside never carries on.
var stripped = append(append([]string{}, credentialHeaders...), assertedIdentity...)

// forged is a block of every stripped header, spelled as style says.
func forged(style string) string {
	var b strings.Builder
	for _, name := range stripped {
		value := `"CEO Olga" <sip:olga@test.example>`
		if strings.Contains(name, "Authorization") {
			value = `Digest username="olga", realm="elsewhere.example", nonce="x", uri="sip:x", response="00"`
		}
		fmt.Fprintf(&b, "%s: %s\r\n%s: %s\r\n", spell(name, style), value, spell(name, style), value)
	}
	return b.String()
}

// carriesForged names a stripped header that msg still carries, other
// than the P-Asserted-Identity we put there (pai).
func carriesForged(msg, pai string) string {
	for _, name := range stripped {
		for _, v := range headerValues(msg, name) {
			if sameHeader(name, "P-Asserted-Identity") && v == pai {
				continue
			}
			return name + ": " + v
		}
	}
	return ""
}

// TestRemoveHeadersEverySpelling: the helpers find and remove a header
// however its name is written, and return.
func TestRemoveHeadersEverySpelling(t *testing.T) {
	names := append(append([]string{}, stripped...), "Route", "Record-Route", "Via", "Contact", "Expires", "User-Agent", "Event", "Require", "Proxy-Require", "Supported", "Content-Type")
	for _, name := range names {
		for _, style := range spellings {
			raw := "OPTIONS sip:x@test.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@test.example>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
			value := "<sip:h@192.0.2.9;lr>"
			if name == "Via" {
				value = "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2"
			}
			raw += fmt.Sprintf("%s: %s\r\n%s: %s\r\nContent-Length: 0\r\n\r\n", spell(name, style), value, spell(name, "MiXeD"), value)
			msg, err := sip.NewParser().ParseSIP([]byte(raw))
			if err != nil {
				t.Fatalf("%s %s: %v", name, style, err)
			}
			req := msg.(*sip.Request)
			if headerNamed(req, name) == nil || len(headersNamed(req, name)) < 2 {
				t.Errorf("%s spelled %s: not found", name, style)
				continue
			}
			done := make(chan struct{})
			go func() { removeHeaders(req, name); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatalf("removing %s spelled %s does not return", name, style)
			}
			if h := headerNamed(req, name); h != nil {
				t.Errorf("%s spelled %s: still there: %s", name, style, h)
			}
			if req.CallID() == nil || req.From() == nil {
				t.Errorf("%s spelled %s: removed more than asked", name, style)
			}
		}
	}
}

// TestForgedHeadersEverySpelling performs finding 1 of the audit over UDP
// and TCP: a carrier's INVITE to the shared number, a member's text to
// another member and a member's text to the outside world, each carrying
// every header we strip (credentials, asserted identity) in lower, upper,
// mixed case and compact form, with the other headers we read (From, To,
// Call-ID, Via, Content-Type, User-Agent) in the same spelling. Each is
// answered, reaches its destination without them (only our own
// P-Asserted-Identity), and the server goes on answering.
func TestForgedHeadersEverySpelling(t *testing.T) {
	e := newEnv(t, nil)
	alice := newDevice(t, e, "alice", "udp")
	bob := newDevice(t, e, "bob", "tcp")
	numberWith(t, e, "alice", "bob")
	carrierOut := newRawPeer(t, e, "UDP", "127.0.0.3") // the trunk's own address, for what we send it
	if err := e.dir.AddTrunk("", "carrier", carrierOut.local, []string{"127.0.0.3/32"}); err != nil {
		t.Fatal(err)
	}
	wait := 5 * time.Second
	for _, transport := range []string{"UDP", "TCP"} {
		for _, style := range spellings {
			name := func(n string) string { return spell(n, style) }
			t.Run(transport+"/"+style, func(t *testing.T) {
				carrier := forgedCall(t, e, alice, bob, transport, style)
				// A member's text to another member, then to an outside number.
				phone := newRawPeer(t, e, transport, "127.0.0.1")
				for _, to := range []string{"bob", "+15550002222"} {
					callID := fmt.Sprintf("forged-msg-%s-%s-%s", to, transport, style)
					ruri := fmt.Sprintf("sip:%s@%s", to, e.addr)
					msg := func(cseq int, auth string) string {
						return fmt.Sprintf("MESSAGE %s SIP/2.0\r\n%s\r\n%s: \"CEO Olga\" <sip:%s@%s>;tag=m1\r\n%s: <%s>\r\n%s: %s\r\n"+
							"CSeq: %d MESSAGE\r\nMax-Forwards: 70\r\n%s: phone\r\n%s: text/plain\r\n%s: <sip:bogus@192.0.2.1;lr>\r\n%s%s%s: 2\r\n\r\nhi",
							ruri, phone.via(), name("From"), testNumber, testRealm, name("To"), ruri, name("Call-ID"), callID, cseq,
							name("User-Agent"), name("Content-Type"), name("Route"), forged(style), auth, name("Content-Length"))
					}
					phone.send(e, msg(1, ""))
					chal := phone.final(callID, wait)
					if statusCode(chal) != 407 {
						t.Fatalf("text to %s: want 407, got %q", to, chal)
					}
					phone.send(e, msg(2, authorize(t, chal, "MESSAGE", ruri, "alice", 1)+"\r\n"))
					if to == "bob" {
						got := recvWithin(t, bob.messages, "bob's text", wait)
						if h := carriesForged(got.String(), "<sip:alice@"+testRealm+">"); h != "" {
							t.Errorf("bob's phone got %s", h)
						}
						if u, d := got.From().Address.User, got.From().DisplayName; u != "alice" || d != "alice" {
							t.Errorf("bob's phone got the text from %q <%s>, want alice", d, u)
						}
					} else {
						out := carrierOut.await(wait, func(m string) bool { return strings.HasPrefix(m, "MESSAGE ") && headerValue(m, "Call-ID") == callID })
						if out == "" {
							t.Fatal("the trunk got no text")
						}
						if h := carriesForged(out, fmt.Sprintf("<sip:%s@%s>", testNumber, "127.0.0.3")); h != "" {
							t.Errorf("the trunk got %s", h)
						}
						if r := headerValues(out, "Route"); len(r) > 0 {
							t.Errorf("the trunk got Route %q", r)
						}
						carrierOut.udp.WriteToUDP([]byte(okFor(out)), udpAddr(e.addr))
					}
					if res := phone.final(callID, wait); statusCode(res) != 200 {
						t.Fatalf("text to %s: %q", to, res)
					}
				}
				// Still answering, on this transport from both addresses.
				stillAnswers(t, e, carrier, phone)
			})
		}
	}
	e.noPanics()
}

// okFor is a 200 to a request's text, as a raw peer answers.
func okFor(req string) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 200 OK\r\n")
	for _, n := range []string{"Via", "From", "To", "Call-ID", "CSeq"} {
		for _, v := range headerValues(req, n) {
			if n == "To" && !strings.Contains(v, "tag=") {
				v += ";tag=ok"
			}
			b.WriteString(n + ": " + v + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// forgedCall: a carrier's call to the number over transport, every header
// we strip forged in style; both phones ring without them, and the caller's
// CANCEL ends it. It returns the carrier.
func forgedCall(t *testing.T, e *env, alice, bob *device, transport, style string) *rawPeer {
	t.Helper()
	name := func(n string) string { return spell(n, style) }
	wait := 5 * time.Second
	carrier := newRawPeer(t, e, transport, "127.0.0.3")
	callID := fmt.Sprintf("forged-inv-%s-%s", transport, style)
	via := carrier.via()
	inv := fmt.Sprintf("INVITE sip:%s@%s SIP/2.0\r\n%s\r\n%s: <sip:+15550001111@carrier.example>;tag=c1\r\n%s: <sip:%s@%s>\r\n"+
		"%s: %s\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n%s: carrier-gw\r\n%s: <sip:carrier@%s>\r\n%s%s: 0\r\n\r\n",
		testNumber, e.addr, via, name("From"), name("To"), testNumber, e.addr, name("Call-ID"), callID,
		name("User-Agent"), name("Contact"), carrier.local, forged(style), name("Content-Length"))
	carrier.send(e, inv)
	got := recvWithin(t, alice.invites, "alice's INVITE", wait)
	if h := carriesForged(got.String(), "<sip:"+testNumber+"@"+testRealm+">"); h != "" {
		t.Errorf("alice's phone got %s", h)
	}
	recvWithin(t, bob.invites, "bob's INVITE", wait)
	if carrier.await(wait, func(m string) bool { return statusCode(m) == 180 }) == "" {
		t.Fatal("no 180 to the carrier")
	}
	cancel := strings.Replace(strings.Replace(inv, "INVITE sip:", "CANCEL sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 CANCEL", 1)
	cancel = cancel[:strings.Index(cancel, "\r\n\r\n")+4]
	carrier.send(e, strings.Replace(cancel, name("Content-Length")+": 0", name("Content-Length")+": 0", 1))
	if res := carrier.await(wait, func(m string) bool { return statusCode(m) == 487 }); res == "" {
		t.Fatal("no 487 after CANCEL")
	}
	recvWithin(t, alice.cancels, "alice's CANCEL", wait)
	recvWithin(t, bob.cancels, "bob's CANCEL", wait)
	return carrier
}

// stillAnswers: each peer's OPTIONS is answered 200.
func stillAnswers(t *testing.T, e *env, peers ...*rawPeer) {
	t.Helper()
	for i, p := range peers {
		id := fmt.Sprintf("alive-%d-%s-%d", i, p.local, time.Now().UnixNano())
		p.send(e, fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\n%s\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			e.addr, p.via(), e.addr, id))
		if res := p.final(id, 5*time.Second); statusCode(res) != 200 {
			t.Fatalf("OPTIONS from %s afterwards: %q", p.local, res)
		}
	}
}

package sip

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icholy/digest"
)

// rawPeer is a hand-written SIP peer on one loopback address, over UDP or
// TCP: what it sends is exactly what the test wrote (as an attacker's
// would be), what it receives is kept as text.
type rawPeer struct {
	t         *testing.T
	transport string // "UDP" or "TCP"
	udp       *net.UDPConn
	tcp       net.Conn
	local     string // ip:port as the server sees it
	v6        bool   // the peer is on IPv6: it talks to the server's IPv6 address
	in        chan string
	seq       atomic.Int64
}

// newRawPeer opens a peer from ip (127.0.0.1, 127.0.0.2, ...) to e.
func newRawPeer(t *testing.T, e *env, transport, ip string) *rawPeer {
	t.Helper()
	p := &rawPeer{t: t, transport: transport, in: make(chan string, 64), v6: netip.MustParseAddr(ip).Is6()}
	switch transport {
	case "UDP":
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Fatal(err)
		}
		p.udp, p.local = c, c.LocalAddr().String()
		go p.readUDP()
	case "TCP":
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", p.server(e).String())
		if err != nil {
			t.Fatal(err)
		}
		p.tcp, p.local = c, c.LocalAddr().String()
		go p.readTCP()
	default:
		t.Fatalf("transport %q", transport)
	}
	t.Cleanup(p.close)
	return p
}

func (p *rawPeer) close() {
	if p.udp != nil {
		p.udp.Close()
	}
	if p.tcp != nil {
		p.tcp.Close()
	}
}

func (p *rawPeer) readUDP() {
	buf := make([]byte, 1<<16)
	for {
		n, _, err := p.udp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p.deliver(string(buf[:n]))
	}
}

func (p *rawPeer) readTCP() {
	var in []byte
	buf := make([]byte, 1<<16)
	for {
		n, err := p.tcp.Read(buf)
		if err != nil {
			return
		}
		in = append(in, buf[:n]...)
		for i := 0; i < 100; i++ { // at most 100 messages per read
			m, kind := frame(in, 1<<20)
			if kind == frameNeedMore || m == 0 {
				break
			}
			if kind == frameMessage || kind == frameUnsized {
				p.deliver(string(in[:m]))
			}
			in = in[m:]
		}
	}
}

func (p *rawPeer) deliver(msg string) {
	select {
	case p.in <- msg:
	default: // the test reads what it needs; never block the reader
	}
}

// server is e's address of the peer's family (e's first for IPv4), as it
// is now (a restart may move it).
func (p *rawPeer) server(e *env) netip.AddrPort {
	if p.v6 {
		for _, l := range e.srv.Addrs() {
			if l.Addr().Is6() {
				return l
			}
		}
	}
	return e.addr
}

// send writes msg to e as it is.
func (p *rawPeer) send(e *env, msg string) {
	p.t.Helper()
	var err error
	if p.udp != nil {
		_, err = p.udp.WriteToUDP([]byte(msg), net.UDPAddrFromAddrPort(p.server(e)))
	} else {
		_, err = p.tcp.Write([]byte(msg))
	}
	if err != nil {
		p.t.Fatal(err)
	}
}

// await returns the first message received within wait that want
// accepts ("" when none does), skipping others.
func (p *rawPeer) await(wait time.Duration, want func(msg string) bool) string {
	deadline := time.After(wait)
	for {
		select {
		case m := <-p.in:
			if want(m) {
				return m
			}
		case <-deadline:
			return ""
		}
	}
}

// final awaits a final response to the request with callID and CSeq
// method.
func (p *rawPeer) final(callID string, wait time.Duration) string {
	return p.await(wait, func(m string) bool {
		return strings.HasPrefix(m, "SIP/2.0 ") && !strings.HasPrefix(m, "SIP/2.0 1") && headerValue(m, "Call-ID") == callID
	})
}

// via is a Via header for the peer's next request (a fresh branch).
func (p *rawPeer) via() string {
	return fmt.Sprintf("Via: SIP/2.0/%s %s;branch=z9hG4bK-raw%d-%d", p.transport, p.local, time.Now().UnixNano(), p.seq.Add(1))
}

// statusCode is the status of a response's text, 0 for anything else.
func statusCode(msg string) int {
	var code int
	if _, err := fmt.Sscanf(msg, "SIP/2.0 %d", &code); err != nil {
		return 0
	}
	return code
}

// headerValue is the first value of the header name (any case, compact
// form too) in a message's text.
func headerValue(msg, name string) string {
	if v := headerValues(msg, name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// headerValues are the values of the header name (any case, compact form
// too) in a message's text, read without our parser or sipgo's.
func headerValues(msg, name string) []string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	var out []string
	for _, line := range strings.Split(head, "\r\n")[1:] {
		n, v, ok := strings.Cut(line, ":")
		if ok && sameHeader(strings.TrimSpace(n), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// authorize answers the challenge in a 401/407 response for user (password
// "secret-"+user): the Authorization or Proxy-Authorization line for a
// request of method to uri, with nonce count nc.
func authorize(t *testing.T, challengeMsg, method, uri, user string, nc int) string {
	t.Helper()
	name, hdr := "WWW-Authenticate", "Authorization"
	if statusCode(challengeMsg) == 407 {
		name, hdr = "Proxy-Authenticate", "Proxy-Authorization"
	}
	var chal *digest.Challenge
	for _, v := range headerValues(challengeMsg, name) {
		c, err := digest.ParseChallenge(v)
		if err == nil && (c.Algorithm == "" || c.Algorithm == "MD5") {
			chal = c
			break
		}
	}
	if chal == nil {
		t.Fatalf("no MD5 challenge in:\n%s", challengeMsg)
	}
	cred, err := digest.Digest(chal, digest.Options{Method: method, URI: uri, Username: user, Password: "secret-" + user, Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	return hdr + ": " + cred.String()
}

// udpAddr is a for WriteToUDP.
func udpAddr(a netip.AddrPort) *net.UDPAddr { return net.UDPAddrFromAddrPort(a) }

// call has user, from p, call ruri (answering the 407 with nc 1) and
// returns the first final response (the callee's phone decides it).
func (p *rawPeer) call(e *env, ruri, user, callID string, wait time.Duration) string {
	p.t.Helper()
	invite := func(cseq int, auth string) string {
		if auth != "" {
			auth += "\r\n"
		}
		return fmt.Sprintf("INVITE %s SIP/2.0\r\n%s\r\nFrom: <sip:%s@%s>;tag=c%d\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: %d INVITE\r\n"+
			"Max-Forwards: 70\r\nContact: <sip:%s@%s;transport=%s>\r\n%sContent-Length: 0\r\n\r\n",
			ruri, p.via(), user, testRealm, p.seq.Load(), ruri, callID, cseq, user, p.local, strings.ToLower(p.transport), auth)
	}
	p.send(e, invite(1, ""))
	chal := p.final(callID, wait)
	if statusCode(chal) != 407 {
		p.t.Fatalf("%s's call: want 407, got %q", user, chal)
	}
	p.send(e, invite(2, authorize(p.t, chal, "INVITE", ruri, user, 1)))
	return p.final(callID, wait)
}

// newTrunkPeer is a raw UDP peer on 127.0.0.3 that is the trusted trunk
// "carrier" (its exact address allowed, and where we send calls out).
func newTrunkPeer(t *testing.T, e *env) *rawPeer {
	t.Helper()
	p := newRawPeer(t, e, "UDP", "127.0.0.3")
	if err := e.dir.AddTrunk("", "carrier", p.local, []string{p.local}); err != nil {
		t.Fatal(err)
	}
	return p
}

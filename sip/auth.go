package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/partyline/partyline/acl"
)

// Directory is what the SIP side needs to know about users and trunks.
// acl.Directory satisfies it.
type Directory interface {
	Realm() string
	// UserHA1 returns the user's HA1 (SHA-256 when sha256, else MD5).
	UserHA1(user string, sha256 bool) (string, bool)
	// TrustedTrunk names the trunk that trusts traffic from src.
	TrustedTrunk(src netip.AddrPort) (string, bool)
	// Snapshot is the directory now: numbers, members, who rings.
	Snapshot() *acl.Snapshot
}

// nonces are self-validating and bound to the address they were sent
// to: base64url(8-byte unix seconds || 8-byte sequence number || 16 bytes
// of HMAC-SHA256(key, seconds || sequence || realm || source IP)). Nothing
// is stored per challenge but one slot of the nonce-count table (counts):
// a nonce whose slot was reused by 1<<20 later challenges is stale.
type nonces struct {
	key    []byte
	ttl    time.Duration
	seq    *atomic.Uint64
	counts []atomic.Uint32 // highest nc seen, per sequence number mod len
}

// nonceSlots is the size of the nonce-count table (4 MiB): enough for
// 3,500 challenges a second for a 5-minute nonce lifetime before a nonce
// goes stale early (its phone is then simply challenged again).
const nonceSlots = 1 << 20

func newNonces(ttl time.Duration) nonces {
	key := make([]byte, 32)
	rand.Read(key)
	return nonces{key: key, ttl: ttl, seq: new(atomic.Uint64), counts: make([]atomic.Uint32, nonceSlots)}
}

func (n nonces) mac(head []byte, realm string, src netip.Addr) []byte {
	m := hmac.New(sha256.New, n.key)
	m.Write(head)
	m.Write([]byte(realm))
	m.Write([]byte{0})
	m.Write(src.Unmap().AsSlice())
	return m.Sum(nil)[:16]
}

func (n nonces) issue(now time.Time, realm string, src netip.Addr) string {
	var b [32]byte
	seq := n.seq.Add(1)
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	binary.BigEndian.PutUint64(b[8:16], seq)
	n.counts[seq%nonceSlots].Store(0)
	copy(b[16:], n.mac(b[:16], realm, src))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// check says whether the nonce is ours and was sent to src (valid) and, if
// so, its sequence number and whether it has expired (stale).
func (n nonces) check(nonce string, now time.Time, realm string, src netip.Addr) (seq uint64, valid, stale bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 32 {
		return 0, false, false
	}
	if !hmac.Equal(b[16:], n.mac(b[:16], realm, src)) {
		return 0, false, false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	if issued.After(now.Add(5 * time.Second)) {
		return 0, false, false
	}
	seq = binary.BigEndian.Uint64(b[8:16])
	return seq, true, now.Sub(issued) > n.ttl || n.seq.Load()-seq >= nonceSlots
}

// counted records nonce count nc for the nonce with sequence number seq:
// false when a request already used nc or a higher count with it (a
// replay, or out of order). With peek it only looks, and also accepts the
// count last used (a retransmission of that request).
func (n nonces) counted(seq uint64, nc int, peek bool) bool {
	if nc <= 0 || nc > 1<<31 {
		return false
	}
	slot := &n.counts[seq%nonceSlots]
	for range 64 { // bounded: each failed swap means another request won
		last := slot.Load()
		switch {
		case uint32(nc) < last, uint32(nc) == last && !peek:
			return false
		case peek:
			return true
		}
		if slot.CompareAndSwap(last, uint32(nc)) {
			return true
		}
	}
	return false
}

// challenges returns the WWW-/Proxy-Authenticate values for a request from
// src, one per algorithm in the order given (RFC 8760: a client takes the
// first it supports).
func (n nonces) challenges(now time.Time, realm string, src netip.Addr, stale bool, algs []string) []string {
	nonce := n.issue(now, realm, src)
	out := make([]string, 0, len(algs))
	for _, alg := range algs {
		c := digest.Challenge{Realm: realm, Nonce: nonce, Algorithm: alg, QOP: []string{"auth"}, Stale: stale}
		out = append(out, c.String())
	}
	return out
}

// authOutcome is what checking one request's credentials found.
type authOutcome int

const (
	authNone   authOutcome = iota // no usable credentials of ours: challenge, count nothing
	authOK                        // verified
	authStale                     // right password, but an expired nonce or a used count: challenge with stale=true
	authFailed                    // our nonce, sent to this source, but wrong: challenge and count a failure
)

// dummyHA1 is used for unknown users so they cost the same as known ones.
var dummyHA1 = strings.Repeat("0", 64)

// proof is what a request's digest credentials are checked against.
type proof struct {
	method string
	uri    sip.Uri // the Request-URI: the credentials' uri must name it
	src    netip.Addr
	now    time.Time
	peek   bool // look at the nonce count without using it up
	// alsoURI, when set, accepts a digest-uri other than the Request-URI
	// (see Server.DigestURIServer).
	alsoURI func(sip.Uri) bool
}

// verify checks one request's credentials (parsed from its Authorization
// or Proxy-Authorization for our realm; nil when it has none). It returns
// the user name they name (for a failure too, to key its count).
func (n nonces) verify(dir Directory, cred *digest.Credentials, p proof) (string, authOutcome) {
	if cred == nil {
		return "", authNone
	}
	realm := dir.Realm()
	seq, valid, stale := n.check(cred.Nonce, p.now, realm, p.src)
	if !valid {
		// Not a nonce we sent to this address (made up, from before a
		// restart, or captured and sent from elsewhere): a fresh
		// challenge, and nothing counted, so that nobody can get a user
		// or an address banned by sending junk in its name.
		return "", authNone
	}
	if cred.Username == "" || cred.Response == "" || !p.uriMatches(cred.URI) {
		return cred.Username, authFailed
	}
	var sha bool
	switch strings.ToUpper(cred.Algorithm) {
	case "", "MD5":
	case "SHA-256":
		sha = true
	default:
		return cred.Username, authFailed
	}
	var qop []string
	nc := 1 // without qop there is no count: the nonce is good once
	switch cred.QOP {
	case "":
	case "auth":
		if cred.Cnonce == "" || cred.Nc == 0 {
			return cred.Username, authFailed
		}
		qop, nc = []string{"auth"}, cred.Nc
	default:
		return cred.Username, authFailed
	}
	ha1, known := dir.UserHA1(cred.Username, sha)
	if !known {
		ha1 = dummyHA1[:32]
		if sha {
			ha1 = dummyHA1
		}
	}
	want, err := digest.Digest(&digest.Challenge{Realm: realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, QOP: qop, Opaque: cred.Opaque},
		digest.Options{Method: p.method, URI: cred.URI, Count: nc, Cnonce: cred.Cnonce, Username: cred.Username, A1: ha1})
	if err != nil {
		return cred.Username, authFailed
	}
	match := hmac.Equal([]byte(want.Response), []byte(strings.ToLower(cred.Response)))
	if !match || !known {
		return cred.Username, authFailed
	}
	if stale || !n.counted(seq, nc, p.peek) {
		return cred.Username, authStale
	}
	return cred.Username, authOK
}

// uriMatches reports whether a digest-uri is one the request may carry:
// its Request-URI, or what alsoURI accepts.
func (p proof) uriMatches(digestURI string) bool {
	if sameURI(digestURI, p.uri) {
		return true
	}
	var u sip.Uri
	return p.alsoURI != nil && sip.ParseUri(digestURI, &u) == nil && p.alsoURI(u)
}

// sameURI reports whether the credentials' digest-uri names the
// Request-URI (RFC 3261 §22.4, RFC 2617 §3.2.2.5): the same scheme, user,
// host and port (5060 when left out), so that credentials captured from
// one request cannot be sent again to another destination.
func sameURI(digestURI string, ruri sip.Uri) bool {
	var u sip.Uri
	if err := sip.ParseUri(digestURI, &u); err != nil {
		return false
	}
	port := func(u sip.Uri) int {
		if u.Port == 0 {
			return 5060
		}
		return u.Port
	}
	if strings.EqualFold(u.Scheme, "tel") || strings.EqualFold(ruri.Scheme, "tel") {
		return strings.EqualFold(u.Scheme, ruri.Scheme) && strings.EqualFold(u.Host, ruri.Host)
	}
	return strings.EqualFold(u.Scheme, ruri.Scheme) && u.User == ruri.User &&
		strings.EqualFold(u.Host, ruri.Host) && port(u) == port(ruri)
}

// credentials returns the request's Digest credentials for our realm in
// header hdr, or nil. A request that carries credentials for several
// realms (it passed other proxies) is judged by ours (RFC 3261 §22.3).
func credentials(req *sip.Request, hdr, realm string) *digest.Credentials {
	for _, h := range headersNamed(req, hdr) {
		v := strings.TrimSpace(h.Value())
		if !digest.IsDigest(v) {
			continue
		}
		if c, err := digest.ParseCredentials(v); err == nil && c.Realm == realm {
			return c
		}
	}
	return nil
}

// authVerdict is what checking a request's credentials decided.
type authVerdict struct {
	user      string        // proven, when challenge is nil and !silent
	challenge *sip.Response // 401/407 to answer with
	silent    bool          // banned: no answer at all
}

// checkAuth verifies the request's digest credentials (Authorization, or
// Proxy-Authorization when proxy). Failures count towards the bans of the
// user from the source and of the source; a trunk's address is never
// banned. With peek the nonce count is looked at, not used up (admission;
// the handler then checks the same credentials again and uses it).
func (s *Server) checkAuth(req *sip.Request, src netip.AddrPort, proxy, peek bool) authVerdict {
	hdr := "Authorization"
	if proxy {
		hdr = "Proxy-Authorization"
	}
	now, ip := s.Now(), src.Addr().Unmap()
	cred := credentials(req, hdr, s.dir.Realm())
	pr := proof{method: string(req.Method), uri: req.Recipient, src: ip, now: now, peek: peek}
	if s.DigestURIServer {
		pr.alsoURI = func(u sip.Uri) bool { return u.User == "" && aorScheme(u.Scheme) && s.isUs(u) }
	}
	user, outcome := s.nonces.verify(s.dir, cred, pr)
	if user != "" && s.bans.Banned(ip, user, now) && !s.trusted(src) {
		return authVerdict{silent: true}
	}
	switch outcome {
	case authOK:
		return authVerdict{user: user}
	case authFailed:
		s.authFailures.Add(1)
		if !s.trusted(src) {
			userBan, sourceBan := s.bans.Fail(ip, user, now)
			if userBan {
				s.securityLog("auth_ban", src, "user", user, "for", s.BanFor.String())
			}
			if sourceBan {
				s.securityLog("auth_ban", src, "for", s.BanFor.String())
			}
		}
	}
	return authVerdict{challenge: s.challenge(req, src, proxy, outcome == authStale)}
}

// trusted reports whether src is one of a trunk's allowed addresses.
func (s *Server) trusted(src netip.AddrPort) bool {
	_, ok := s.dir.TrustedTrunk(src)
	return ok
}

// authenticate is checkAuth in a request's handler: the proven user, or
// false once it has answered (with a challenge) or stayed silent.
func (s *Server) authenticate(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, proxy bool) (string, bool) {
	v := s.checkAuth(req, src, proxy, false)
	switch {
	case v.silent:
		return "", false
	case v.challenge != nil:
		if err := tx.Respond(v.challenge); err != nil {
			s.Log.Debug("respond failed", "call_id", req.CallID().Value(), "status", v.challenge.StatusCode, "error", err)
		}
		return "", false
	}
	return v.user, true
}

// needsProxyAuth reports whether admission must see valid credentials
// before anything is kept for req: a request outside a dialog that a
// trunk did not send, except REGISTER (authenticated as it is answered,
// statelessly), OPTIONS (answered statelessly), ACK and CANCEL (never
// challenged, RFC 3261 §22.1).
func (s *Server) needsProxyAuth(req *sip.Request, src netip.AddrPort) bool {
	switch req.Method {
	case sip.REGISTER, sip.OPTIONS, sip.ACK, sip.CANCEL:
		return false
	}
	if req.To().Params.Has("tag") {
		return false // in a dialog: the dialog is the credential
	}
	return !s.trusted(src)
}

// admitUnproven is the stateless end of a request without valid
// credentials: silence for a banned user or a source over its rate (which
// bans it), 413 for one too large to be worth a challenge, else the
// challenge. Nothing is kept for it: a retransmission is challenged again.
func (s *Server) admitUnproven(req *sip.Request, size int, src netip.AddrPort, v authVerdict) (verdict, []byte) {
	if v.silent || !s.allowUnproven(src) {
		return drop, nil
	}
	if size > s.MaxUnauthenticated {
		return reply, s.response(req, 413, "Request Entity Too Large")
	}
	return reply, []byte(v.challenge.String())
}

// allowUnproven takes one of the source's tokens for requests without
// valid credentials; a source with none left is flooding us and is banned
// (a trunk's addresses never are, and are never limited).
func (s *Server) allowUnproven(src netip.AddrPort) bool {
	now, ip := s.Now(), src.Addr().Unmap()
	if s.unproven.Allow(ip, now) || s.trusted(src) {
		return true
	}
	if s.bans.Ban(ip, now) {
		s.securityLog("flood_ban", src, "for", s.BanFor.String())
	}
	return false
}

// registerStateless answers an authenticated REGISTER without a
// transaction, as Kamailio's registrar does: a retransmission is handled
// again and gets the same answer (the location store takes a repeated
// Call-ID and CSeq as that; its nonce count, used up, brings a fresh
// challenge that the phone answers if it still waits).
func (s *Server) registerStateless(req *sip.Request, src netip.AddrPort, respond func([]byte)) {
	defer func() {
		if p := recover(); p != nil {
			s.recovered(p, "REGISTER", req.CallID().Value())
		}
	}()
	v := s.checkAuth(req, src, false, false)
	switch {
	case v.silent:
		return
	case v.challenge != nil:
		if !s.allowUnproven(src) {
			return
		}
		respond([]byte(v.challenge.String()))
		return
	}
	respond([]byte(s.registerResponse(req, src, v.user).String()))
}

// challenge is the 401 (or 407 when proxy) asking req for digest
// credentials, one challenge per algorithm, with a nonce for src.
func (s *Server) challenge(req *sip.Request, src netip.AddrPort, proxy, stale bool) *sip.Response {
	code, reason, hdr := 401, "Unauthorized", "WWW-Authenticate"
	if proxy {
		code, reason, hdr = 407, "Proxy Authentication Required", "Proxy-Authenticate"
	}
	res := newResponse(req, code, reason)
	for _, c := range s.nonces.challenges(s.Now(), s.dir.Realm(), src.Addr().Unmap(), stale, s.algorithms(req)) {
		res.AppendHeader(sip.NewHeader(hdr, c))
	}
	return res
}

// algorithms is the challenge order: MD5 first unless DigestSHA256First;
// MD5 alone for user agents in MD5OnlyUserAgents.
func (s *Server) algorithms(req *sip.Request) []string {
	if h := headerNamed(req, "User-Agent"); h != nil {
		ua := strings.ToLower(h.Value())
		for _, q := range s.MD5OnlyUserAgents {
			if q != "" && strings.Contains(ua, strings.ToLower(q)) {
				return []string{"MD5"}
			}
		}
	}
	if s.DigestSHA256First {
		return []string{"SHA-256", "MD5"}
	}
	return []string{"MD5", "SHA-256"}
}

// securityLog writes one security event for operators (and fail2ban):
// message "security", the event, the source IP, then kv. Attackers
// trigger these: each source gets at most 5 in a row, then one a second.
func (s *Server) securityLog(event string, src netip.AddrPort, kv ...any) {
	ip := src.Addr().Unmap()
	if !s.securityLogs.Allow(ip, s.Now()) {
		return
	}
	s.Log.Warn("security", append([]any{"event", event, "src", ip.String()}, kv...)...)
}

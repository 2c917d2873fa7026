package sip

// Message waiting (RFC 3842): devices SUBSCRIBE to message-summary and get
// NOTIFYs with the new/old voicemail counts over the numbers their user
// belongs to; registered devices that did not subscribe get unsolicited
// NOTIFYs (unless NoUnsolicitedMWI).

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/inbox"
)

// Voicemails is what MWI needs from the inbox. inbox.Store satisfies it.
type Voicemails interface {
	VoicemailCounts(numbers []string) (inbox.Counts, error)
}

// subscription is one device's message-summary subscription; we are the
// notifier (UAS of the SUBSCRIBE dialog).
type subscription struct {
	key       string // in subscriptions.m: Call-ID and remote tag
	user      string
	callID    string
	remoteTag string  // the subscriber's From tag
	localTag  string  // our To tag
	from      sip.Uri // the subscriber's From URI (our To)
	to        sip.Uri // the SUBSCRIBE's To URI (our From)
	contact   sip.Uri
	dest      string // where the SUBSCRIBE came from, and NOTIFYs go
	transport string

	mu      sync.Mutex // guards what follows
	expires time.Time
	cseq    uint32
	over    bool // terminated, or its subscriber failed a NOTIFY: no more NOTIFYs
}

// subscriptions holds the subscriptions and the NOTIFYs on their way. Lock
// order: subscriptions.mu before subscription.mu.
type subscriptions struct {
	mu   sync.Mutex
	m    map[string]*subscription // by key
	out  map[string]*notifyQueue  // by destination address
	logs limitLogs                // rate-limits MWI's security lines

	// Test hooks, nil outside tests: a NOTIFY transaction starts, with the
	// number then in flight to its address; a subscription ended because
	// its subscriber failed a NOTIFY.
	started func(dest string, inFlight int)
	ended   func(sub *subscription)
}

func newSubscriptions() *subscriptions {
	return &subscriptions{m: map[string]*subscription{}, out: map[string]*notifyQueue{}}
}

// notifyQueue holds the NOTIFYs to one address: at most NotifiesInFlight
// transactions in flight, one per job key, and the rest waiting, each key
// once. A NOTIFY is built when it is sent, with the state as it is then, so
// a key already waiting needs nothing more: the NOTIFYs a busy or silent
// subscriber makes wait fold into one.
type notifyQueue struct {
	inFlight map[string]bool
	waiting  []notifyJob
}

type notifyJob struct {
	key  string
	send func()
}

const mwiDefaultExpires = 3600 * time.Second // RFC 3842 §6

// subscribe answers an out-of-dialog SUBSCRIBE of an authenticated user.
func (s *Server) subscribe(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, user string) {
	if ev := headerNamed(req, "Event"); ev == nil || !strings.EqualFold(strings.TrimSpace(strings.Split(ev.Value(), ";")[0]), "message-summary") {
		res := sip.NewResponseFromRequest(req, 489, "Bad Event", nil)
		res.AppendHeader(sip.NewHeader("Allow-Events", "message-summary"))
		tx.Respond(res)
		return
	}
	if req.From().Address.User != user {
		s.respond(tx, req, 403, "Forbidden")
		return
	}
	contact, ok := req.Contact(), req.Contact() != nil
	if !ok {
		s.respond(tx, req, 400, "Missing Contact")
		return
	}
	exp, ok := s.subscriptionExpiry(req, tx)
	if !ok {
		return
	}
	remoteTag := req.From().Params.GetOr("tag", "")
	sub := &subscription{
		key: req.CallID().Value() + "\x00" + remoteTag, user: user, callID: req.CallID().Value(), remoteTag: remoteTag,
		localTag: newBranchID()[len(branchPrefix):], from: req.From().Address, to: req.To().Address,
		contact: contact.Address, dest: src.String(), transport: strings.ToUpper(req.Transport()),
		expires: s.Now().Add(exp),
	}
	if exp > 0 {
		if limit := s.addSubscription(sub); limit != "" {
			// 403: RFC 6665 §4.2.1.2 answers a subscription the notifier's
			// policy refuses with 403, and a subscriber takes it as final
			// for now; this user or device holds all it may until one of
			// its subscriptions ends. Not 489 (it says the event package is
			// unknown, and a phone stops asking for good), nor 503 (it says
			// the whole server is down: clients fail over, RFC 3263 §4.3,
			// and Retry-After invites them all back at once).
			s.securityEvent(&s.subs.logs, "subscribe_cap", src.Addr().Unmap().String(), "user", user, "limit", limit)
			s.respond(tx, req, 403, "Too Many Subscriptions")
			return
		}
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.To().Params.Remove("tag")
	res.To().Params.Add("tag", sub.localTag)
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(exp/time.Second))))
	host, port := s.advertised(req)
	res.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s>", hostPort(host, uint16(port)))))
	if err := tx.Respond(res); err != nil {
		s.removeSubscription(sub)
		return
	}
	s.notifySubscription(sub)
}

// addSubscription stores sub unless its user or device (the user at one
// source address) holds all the subscriptions it may: then it returns
// which limit ("user", "device"). Expired subscriptions are dropped first;
// a SUBSCRIBE of a dialog already stored replaces it.
func (s *Server) addSubscription(sub *subscription) string {
	now := s.Now()
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	user, device := 0, 0
	for k, o := range s.subs.m {
		o.mu.Lock()
		expired := !now.Before(o.expires)
		o.mu.Unlock()
		switch {
		case expired:
			delete(s.subs.m, k)
		case k == sub.key || o.user != sub.user:
		default:
			user++
			if o.dest == sub.dest {
				device++
			}
		}
	}
	if device >= s.subsPerDevice() {
		return "device"
	}
	if user >= s.subsPerUser() {
		return "user"
	}
	if old := s.subs.m[sub.key]; old != nil {
		old.mu.Lock()
		old.over = true
		old.mu.Unlock()
	}
	s.subs.m[sub.key] = sub
	return ""
}

// removeSubscription forgets sub (not another stored under its key).
func (s *Server) removeSubscription(sub *subscription) {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	if s.subs.m[sub.key] == sub {
		delete(s.subs.m, sub.key)
	}
}

// refreshSubscription handles an in-dialog SUBSCRIBE of ours (refresh or
// Expires: 0); false when it is not one of our subscriptions.
func (s *Server) refreshSubscription(req *sip.Request, tx sip.ServerTransaction) bool {
	key := req.CallID().Value() + "\x00" + req.From().Params.GetOr("tag", "")
	s.subs.mu.Lock()
	sub := s.subs.m[key]
	s.subs.mu.Unlock()
	if sub == nil || req.To().Params.GetOr("tag", "") != sub.localTag {
		return false
	}
	exp, ok := s.subscriptionExpiry(req, tx)
	if !ok {
		return true
	}
	sub.mu.Lock()
	sub.expires = s.Now().Add(exp)
	sub.mu.Unlock()
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(exp/time.Second))))
	tx.Respond(res)
	if exp == 0 {
		s.removeSubscription(sub)
	}
	s.notifySubscription(sub)
	return true
}

// subscriptionExpiry is the subscription's life the request asks for,
// lowered to MaxSubscriptionExpires; false (after answering 423) when it is
// shorter than MinExpires.
func (s *Server) subscriptionExpiry(req *sip.Request, tx sip.ServerTransaction) (time.Duration, bool) {
	exp := mwiDefaultExpires
	if h := headerNamed(req, "Expires"); h != nil {
		n, _ := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32) // range checked in admission
		exp = time.Duration(n) * time.Second
	}
	if exp > 0 && exp < s.MinExpires {
		res := sip.NewResponseFromRequest(req, 423, "Interval Too Brief", nil)
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(s.MinExpires/time.Second))))
		tx.Respond(res)
		return 0, false
	}
	return min(exp, s.maxSubExpires()), true
}

// summary is the message-summary body for a user.
func (s *Server) summary(user string) string {
	numbers := s.dir.Snapshot().NumbersOf(user)
	var c inbox.Counts
	if s.vmStore != nil {
		c, _ = s.vmStore.VoicemailCounts(numbers)
	}
	waiting := "no"
	if c.New > 0 {
		waiting = "yes"
	}
	return fmt.Sprintf("Messages-Waiting: %s\r\nMessage-Account: sip:%s@%s\r\nVoice-Message: %d/%d (0/0)\r\n", waiting, user, s.dir.Realm(), c.New, c.Old)
}

// notifySubscription queues a NOTIFY within sub, with the state as it is
// when it is sent.
func (s *Server) notifySubscription(sub *subscription) {
	s.queueNotify(sub.dest, "sub\x00"+sub.key, func() { s.notify(sub) })
}

// queueNotify has send run once for key towards dest: at once when fewer
// than NotifiesInFlight NOTIFYs are in flight there and none for key, else
// when they allow; nothing more when one for key already waits.
func (s *Server) queueNotify(dest, key string, send func()) {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	q := s.subs.out[dest]
	if q == nil {
		q = &notifyQueue{inFlight: map[string]bool{}}
		s.subs.out[dest] = q
	}
	for _, j := range q.waiting {
		if j.key == key {
			return
		}
	}
	q.waiting = append(q.waiting, notifyJob{key: key, send: send})
	s.dispatchLocked(dest, q)
}

// dispatchLocked starts the waiting NOTIFYs to dest that the bound allows,
// oldest first; s.subs.mu is held.
func (s *Server) dispatchLocked(dest string, q *notifyQueue) {
	limit := s.notifiesInFlight()
	for i := 0; i < len(q.waiting) && len(q.inFlight) < limit; {
		j := q.waiting[i]
		if q.inFlight[j.key] {
			i++ // one NOTIFY of a subscription at a time, in CSeq order
			continue
		}
		q.waiting = slices.Delete(q.waiting, i, i+1)
		q.inFlight[j.key] = true
		if s.subs.started != nil {
			s.subs.started(dest, len(q.inFlight))
		}
		go func() {
			j.send() // bounded by NotifyTimeout
			s.subs.mu.Lock()
			defer s.subs.mu.Unlock()
			delete(q.inFlight, j.key)
			s.dispatchLocked(dest, q)
		}()
	}
	if len(q.inFlight) == 0 && len(q.waiting) == 0 && s.subs.out[dest] == q {
		delete(s.subs.out, dest)
	}
}

// notify sends one NOTIFY within the subscription, built with the counts
// and the subscription's state as they are now. A subscriber that answers
// it with a failure, or not within NotifyTimeout, loses the subscription
// (RFC 6665 §4.2.2): it asked for NOTIFYs to an address that does not take
// them, which is what a spoofed source looks like.
func (s *Server) notify(sub *subscription) {
	sub.mu.Lock()
	if sub.over {
		sub.mu.Unlock()
		return
	}
	sub.cseq++
	left := int(sub.expires.Sub(s.Now()) / time.Second)
	state := fmt.Sprintf("active;expires=%d", left)
	if left <= 0 {
		state = "terminated;reason=timeout"
		sub.over = true
	}
	req := sip.NewRequest(sip.NOTIFY, sub.contact)
	from := &sip.FromHeader{Address: sub.to, Params: sip.NewParams()}
	from.Params.Add("tag", sub.localTag)
	to := &sip.ToHeader{Address: sub.from, Params: sip.NewParams()}
	to.Params.Add("tag", sub.remoteTag)
	callID := sip.CallIDHeader(sub.callID)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: sub.cseq, MethodName: sip.NOTIFY})
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	sub.mu.Unlock()
	res := s.sendNotify(req, sub.user, sub.dest, sub.transport)
	if res != nil && res.StatusCode < 300 {
		return
	}
	sub.mu.Lock()
	sub.over = true
	sub.mu.Unlock()
	s.removeSubscription(sub)
	status := 0
	if res != nil {
		status = res.StatusCode
	} else {
		host := sub.dest
		if ap, err := netip.ParseAddrPort(sub.dest); err == nil {
			host = ap.Addr().Unmap().String()
		}
		s.securityEvent(&s.subs.logs, "notify_unanswered", host, "user", sub.user, "dest", sub.dest)
	}
	s.Log.Debug("mwi: subscription ended", "user", sub.user, "call_id", sub.callID, "status", status)
	s.subs.mu.Lock()
	ended := s.subs.ended
	s.subs.mu.Unlock()
	if ended != nil {
		ended(sub)
	}
}

// sendNotify completes and sends a NOTIFY (ours, not forwarded) and returns
// its final response, nil when none came within NotifyTimeout.
func (s *Server) sendNotify(req *sip.Request, user, dest, transport string) *sip.Response {
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("Event", "message-summary"))
	host, port := s.advertisedLocal()
	req.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s>", hostPort(host, uint16(port)))))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/simple-message-summary"))
	req.SetBody([]byte(s.summary(user)))
	s.viaTo(req, host, port, transport, dest)
	return s.requestWithin(req, s.notifyTimeout())
}

// advertisedLocal is our host:port for requests we originate.
func (s *Server) advertisedLocal() (string, int) {
	if h, ok := s.advertisedHost(); ok {
		_, p := s.advertised(nil)
		return h, p
	}
	a := s.Addrs()[0]
	if a.Addr().IsUnspecified() {
		return "127.0.0.1", int(a.Port())
	}
	return a.Addr().String(), int(a.Port())
}

// NotifyMWI tells the members of a number that its voicemail changed:
// a NOTIFY in every subscription of theirs and, unless NoUnsolicitedMWI,
// an unsolicited one to each of their registered devices that has none.
func (s *Server) NotifyMWI(number string) {
	n, ok := s.dir.Snapshot().Number(number)
	if !ok {
		return
	}
	members := map[string]bool{}
	for _, m := range n.Members {
		members[m.User] = true
	}
	now := s.Now()
	s.subs.mu.Lock()
	var subs []*subscription
	subscribed := map[string]bool{} // user + device source
	for k, sub := range s.subs.m {
		sub.mu.Lock()
		expired := !now.Before(sub.expires)
		sub.mu.Unlock()
		if expired {
			delete(s.subs.m, k)
			continue
		}
		if members[sub.user] {
			subs = append(subs, sub)
			subscribed[sub.user+"\x00"+sub.dest] = true
		}
	}
	s.subs.mu.Unlock()
	for _, sub := range subs {
		s.notifySubscription(sub)
	}
	if s.NoUnsolicitedMWI {
		return
	}
	for user := range members {
		for _, b := range s.loc.Lookup(user) {
			if subscribed[user+"\x00"+b.Source] {
				continue
			}
			var ruri sip.Uri
			if err := sip.ParseUri(b.Contact, &ruri); err != nil {
				continue
			}
			transport := strings.ToUpper(b.Transport)
			s.queueNotify(b.Source, "unsolicited\x00"+user+"\x00"+b.Contact, func() {
				s.unsolicited(ruri, user, b.Source, transport)
			})
		}
	}
}

// unsolicited sends one unsolicited NOTIFY, outside any dialog, to a
// registered device of user that did not subscribe.
func (s *Server) unsolicited(ruri sip.Uri, user, dest, transport string) {
	aor := sip.Uri{Scheme: "sip", User: user, Host: s.dir.Realm()}
	req := sip.NewRequest(sip.NOTIFY, ruri)
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", newBranchID()[len(branchPrefix):])
	callID := sip.CallIDHeader(newBranchID()[len(branchPrefix):] + "@partyline")
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.NOTIFY})
	req.AppendHeader(sip.NewHeader("Subscription-State", "active"))
	s.sendNotify(req, user, dest, transport)
}

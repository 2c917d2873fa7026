package sip

// Message waiting (RFC 3842): devices SUBSCRIBE to message-summary and get
// NOTIFYs with the new/old voicemail counts over the numbers their user
// belongs to; registered devices that did not subscribe get unsolicited
// NOTIFYs (unless NoUnsolicitedMWI).

import (
	"fmt"
	"net/netip"
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
	user      string
	callID    string
	remoteTag string  // the subscriber's From tag
	localTag  string  // our To tag
	from      sip.Uri // the subscriber's From URI (our To)
	to        sip.Uri // the SUBSCRIBE's To URI (our From)
	contact   sip.Uri
	dest      string // where the SUBSCRIBE came from
	transport string
	expires   time.Time

	mu   sync.Mutex // serialises NOTIFYs of this subscription
	cseq uint32
}

type subscriptions struct {
	mu sync.Mutex
	m  map[string]*subscription // callID + remote tag
}

func newSubscriptions() *subscriptions { return &subscriptions{m: map[string]*subscription{}} }

const (
	mwiDefaultExpires = 3600 * time.Second
	mwiMaxExpires     = 7200 * time.Second
)

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
	sub := &subscription{
		user: user, callID: req.CallID().Value(), remoteTag: req.From().Params.GetOr("tag", ""),
		localTag: newBranchID()[len(branchPrefix):], from: req.From().Address, to: req.To().Address,
		contact: contact.Address, dest: src.String(), transport: strings.ToUpper(req.Transport()),
		expires: s.Now().Add(exp),
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.To().Params.Remove("tag")
	res.To().Params.Add("tag", sub.localTag)
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(exp/time.Second))))
	host, port := s.advertised(req)
	res.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s>", hostPort(host, uint16(port)))))
	if err := tx.Respond(res); err != nil {
		return
	}
	if exp > 0 {
		s.subs.mu.Lock()
		s.subs.m[sub.callID+"\x00"+sub.remoteTag] = sub
		s.subs.mu.Unlock()
	}
	go s.notify(sub, exp > 0)
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
		s.subs.mu.Lock()
		delete(s.subs.m, key)
		s.subs.mu.Unlock()
	}
	go s.notify(sub, exp > 0)
	return true
}

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
	return min(exp, mwiMaxExpires), true
}

// summary is the message-summary body for a user.
func (s *Server) summary(user string) string {
	numbers := s.dir.Snapshot().NumbersOf(user)
	var c inbox.Counts
	if s.voicemails != nil {
		c, _ = s.voicemails.VoicemailCounts(numbers)
	}
	waiting := "no"
	if c.New > 0 {
		waiting = "yes"
	}
	return fmt.Sprintf("Messages-Waiting: %s\r\nMessage-Account: sip:%s@%s\r\nVoice-Message: %d/%d (0/0)\r\n", waiting, user, s.dir.Realm(), c.New, c.Old)
}

// notify sends one NOTIFY within the subscription. NOTIFYs of one
// subscription go one at a time, each with the counts as they are when it
// is built, so the last one sent always tells the newest state.
func (s *Server) notify(sub *subscription, active bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.cseq++
	left := int(sub.expires.Sub(s.Now()) / time.Second)
	state := fmt.Sprintf("active;expires=%d", max(left, 0))
	if !active || left <= 0 {
		state = "terminated;reason=timeout"
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
	s.sendNotify(req, sub.user, sub.dest, sub.transport)
}

// sendNotify completes and sends a NOTIFY (ours, not forwarded) and waits
// for its answer, bounded by the transaction's timers.
func (s *Server) sendNotify(req *sip.Request, user, dest, transport string) {
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("Event", "message-summary"))
	host, port := s.advertisedLocal()
	req.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s>", hostPort(host, uint16(port)))))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/simple-message-summary"))
	req.SetBody([]byte(s.summary(user)))
	s.viaTo(req, host, port, transport, dest)
	s.sendFinal(req)
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
		if !now.Before(sub.expires) {
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
		go s.notify(sub, true)
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
			go s.sendNotify(req, user, b.Source, strings.ToUpper(b.Transport))
		}
	}
}

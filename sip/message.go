package sip

import (
	"fmt"
	"mime"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// Texts is where texts (SIP MESSAGE, RFC 3428) are kept. inbox.Store
// satisfies it.
type Texts interface {
	NewID() string
	SaveMessage(m *inbox.Message) error
	// SaveInbound stores a carrier's text once per m.Key: a copy with a
	// stored key writes nothing and reports dup.
	SaveInbound(m *inbox.Message) (stored inbox.Message, dup bool, err error)
	UpdateMessage(m *inbox.Message) error
}

const (
	ctypeComposing = "application/im-iscomposing+xml"
	acceptTexts    = "text/plain, " + ctypeComposing
)

// message handles a MESSAGE outside a dialog: a trunk's to one of our
// numbers is stored and handed to the members' devices; a member's to an
// outside number leaves through the trunk as the shared number; a user's
// to another user reaches that user's devices. user is "" for a trunk.
func (s *Server) message(req *sip.Request, tx sip.ServerTransaction, user string) {
	body, ctype, ok := s.textBody(req, tx)
	if !ok {
		return
	}
	switch t := s.targetOf(req.Recipient); {
	case t.number != "" && user != "":
		s.respond(tx, req, 403, "Forbidden") // texts reach a number from its carrier; members text out
	case t.number != "":
		s.messageIn(req, tx, t.number, ctype, body)
	case user == "":
		s.respond(tx, req, 404, "Not Found")
	case t.user != "":
		s.messageUser(req, tx, user, t.user)
	case t.dest != "":
		s.messageOut(req, tx, user, t.dest, ctype, body)
	default:
		s.respond(tx, req, 404, "Not Found")
	}
}

// textBody checks a MESSAGE's body: text/* in UTF-8 or an isComposing
// document; anything else is 415 with what we accept.
func (s *Server) textBody(req *sip.Request, tx sip.ServerTransaction) ([]byte, string, bool) {
	ctype := ""
	if h := req.ContentType(); h != nil {
		ctype = h.Value()
	}
	mt, params, err := mime.ParseMediaType(ctype)
	body := req.Body()
	switch {
	case len(body) == 0:
		s.respond(tx, req, 400, "Empty Message")
		return nil, "", false
	case err != nil || (!strings.HasPrefix(mt, "text/") && mt != ctypeComposing):
		res := sip.NewResponseFromRequest(req, 415, "Unsupported Media Type", nil)
		res.AppendHeader(sip.NewHeader("Accept", acceptTexts))
		if err := tx.Respond(res); err != nil {
			s.Log.Debug("respond failed", "call_id", req.CallID().Value(), "error", err)
		}
		return nil, "", false
	case mt != ctypeComposing && (!utf8.Valid(body) || (params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8"))):
		res := sip.NewResponseFromRequest(req, 415, "Unsupported Media Type", nil)
		res.AppendHeader(sip.NewHeader("Accept", "text/plain;charset=UTF-8, "+ctypeComposing))
		tx.Respond(res)
		return nil, "", false
	}
	return body, mt, true
}

// fromParty is the outside party a request comes from: the From URI's user
// (tel: its number), as a conversation names it.
func fromParty(u sip.Uri) string {
	if strings.EqualFold(u.Scheme, "tel") {
		return inbox.Party(telNumber(u))
	}
	if u.User != "" {
		return inbox.Party(u.User)
	}
	return u.Host
}

// messageIn takes a carrier's text to a shared number: stored (on disk)
// first, then 200, then a MESSAGE to every registered device of every
// member, each outcome recorded with the text. An isComposing notice is
// not stored: it is shown as the party typing and passed to the devices.
func (s *Server) messageIn(req *sip.Request, tx sip.ServerTransaction, number, ctype string, body []byte) {
	party := fromParty(req.From().Address)
	if ctype == ctypeComposing {
		st, ok := parseComposing(body)
		if !ok {
			s.respond(tx, req, 400, "Bad isComposing Document")
			return
		}
		s.typingSet(number, party, party, st, false)
		s.respond(tx, req, 200, "OK")
		s.goTracked(func() { s.deliver(number, party, ctype, body) })
		return
	}
	texts := s.texts
	// A carrier that missed our 200 sends the same MESSAGE again (same
	// Call-ID, CSeq and From tag): within 32 s the transaction answers it;
	// later, or after a restart, the store knows it by its key.
	tag, _ := req.From().Params.Get("tag")
	m := &inbox.Message{ID: texts.NewID(), Number: number, Party: party, Direction: "inbound",
		Text: string(body), ContentType: ctype, At: s.Now().UTC(), Status: inbox.MsgReceived, CallID: req.CallID().Value(),
		Key: inbox.InboundKey(req.CallID().Value(), req.CSeq().SeqNo, tag)}
	_, dup, err := texts.SaveInbound(m)
	if err != nil {
		// Not stored, so not accepted: the carrier tries again.
		s.Log.Error("storing a text", "number", number, "call_id", m.CallID, "error", err)
		s.respond(tx, req, 500, "Server Internal Error")
		return
	}
	if dup {
		s.respond(tx, req, 200, "OK") // stored and delivered when it first came
		return
	}
	s.typingClear(number, party, party)
	s.respond(tx, req, 200, "OK")
	s.goTracked(func() {
		m.Deliveries = s.deliver(number, party, ctype, body)
		if err := texts.UpdateMessage(m); err != nil {
			s.Log.Error("recording a text's deliveries", "number", number, "message", m.ID, "error", err)
		}
	})
}

// deliver sends a text (or notice) from party to every registered device
// of every member of number, all at once, and returns each outcome.
func (s *Server) deliver(number, party, ctype string, body []byte) []inbox.Delivery {
	n, ok := s.dir.Snapshot().Number(number)
	if !ok {
		return nil
	}
	name := party
	if book := s.contacts; book != nil {
		if got, ok := book.ContactName(party); ok {
			name = got
		}
	}
	host, port := s.advertisedLocal()
	from := sip.Uri{Scheme: "sip", User: party, Host: host, Port: port}
	var users []string
	for _, m := range n.Members {
		users = append(users, m.User)
	}
	return s.sendToDevices(users, "", func(user string, b location.Binding) (*sip.Request, error) {
		req, err := s.textRequest(b, name, from, sip.Uri{Scheme: "sip", User: user, Host: s.dir.Realm()}, ctype, body)
		if err == nil {
			req.AppendHeader(sip.NewHeader("P-Called-Party-ID", "<sip:"+number+"@"+hostPort(host, uint16(port))+">"))
		}
		return req, err
	})
}

// sendToDevices sends a request built per device to every registered
// device of users (but the device at skip), all at once, and waits for
// every final answer (each bounded by its transaction's timers).
func (s *Server) sendToDevices(users []string, skip string, build func(user string, b location.Binding) (*sip.Request, error)) []inbox.Delivery {
	var (
		mu  sync.Mutex
		out = []inbox.Delivery{}
		wg  sync.WaitGroup
	)
	for _, user := range users {
		for _, b := range s.loc.Lookup(user) {
			if b.Source == skip {
				continue
			}
			d := inbox.Delivery{User: user, Contact: b.Contact, Outcome: inbox.DeliveryFailed}
			r, err := build(user, b)
			if err != nil {
				d.At = s.Now().UTC()
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if res := s.sendFinal(r); res != nil {
					d.Status = res.StatusCode
					if res.StatusCode < 300 {
						d.Outcome = inbox.DeliveryDelivered
					}
				}
				d.At = s.Now().UTC()
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b inbox.Delivery) int { return strings.Compare(a.User+a.Contact, b.User+b.Contact) })
	return out
}

// textRequest is a MESSAGE of ours (not forwarded) to one device.
func (s *Server) textRequest(b location.Binding, fromName string, from, to sip.Uri, ctype string, body []byte) (*sip.Request, error) {
	var ruri sip.Uri
	if err := sip.ParseUri(b.Contact, &ruri); err != nil {
		return nil, fmt.Errorf("contact %q: %w", b.Contact, err)
	}
	req := sip.NewRequest(sip.MESSAGE, ruri)
	fh := &sip.FromHeader{DisplayName: fromName, Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", newBranchID()[len(branchPrefix):])
	callID := sip.CallIDHeader(newBranchID()[len(branchPrefix):] + "@partyline")
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: to, Params: sip.NewParams()})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.MESSAGE})
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("Content-Type", ctype))
	req.SetBody(body)
	host, port := s.advertisedLocal()
	s.viaTo(req, host, port, strings.ToUpper(b.Transport), b.Source)
	return req, nil
}

// messageOut sends a member's text to an outside number through the trunk
// of the shared number they text as, with that number as sender; a text
// is stored first (with the member), then its status follows the trunk's
// answer, which the device gets too. An isComposing notice is passed on
// the same way, not stored, and shown to the teammates.
func (s *Server) messageOut(req *sip.Request, tx sip.ServerTransaction, user, dest, ctype string, body []byte) {
	snap := s.dir.Snapshot()
	number, ok := snap.OutboundNumber(user, req.From().Address.User)
	if !ok {
		s.respond(tx, req, 403, "Forbidden")
		return
	}
	composing := ctype == ctypeComposing
	var st composingState
	if composing {
		if st, ok = parseComposing(body); !ok {
			s.respond(tx, req, 400, "Bad isComposing Document")
			return
		}
	}
	fwd, err := s.toTrunk(req, number, dest)
	if err != nil {
		s.Log.Warn("no way out for a text", "number", number, "user", user, "error", err)
		s.respond(tx, req, 503, "Service Unavailable")
		return
	}
	if composing {
		s.typingSet(number, dest, user, st, true)
		src, _ := netip.ParseAddrPort(req.Source())
		s.goTracked(func() { s.showTyping(number, dest, user, src.String(), body) })
		s.relayFinal(req, tx, s.sendFinal(fwd))
		return
	}
	texts := s.texts
	m := &inbox.Message{ID: texts.NewID(), Number: number, Party: dest, Direction: "outbound", Member: user,
		Text: string(body), ContentType: ctype, At: s.Now().UTC(), Status: inbox.MsgSending, CallID: req.CallID().Value()}
	if err := texts.SaveMessage(m); err != nil {
		s.Log.Error("storing a text", "number", number, "call_id", m.CallID, "error", err)
		s.respond(tx, req, 500, "Server Internal Error")
		return
	}
	s.typingClear(number, dest, user)
	res := s.sendFinal(fwd)
	s.settleOut(texts, m, res)
	s.relayFinal(req, tx, res)
}

// settleOut records a sent text's outcome from the trunk's answer.
func (s *Server) settleOut(texts Texts, m *inbox.Message, res *sip.Response) {
	m.Status, m.StatusCode = inbox.MsgFailed, 408
	if res != nil {
		m.StatusCode = res.StatusCode
		if res.StatusCode < 300 {
			m.Status = inbox.MsgSent
		}
	}
	if err := texts.UpdateMessage(m); err != nil {
		s.Log.Error("recording a text's status", "number", m.Number, "message", m.ID, "error", err)
	}
}

// relayFinal answers the device with the far end's final status (408
// when none came).
func (s *Server) relayFinal(req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	if res == nil {
		s.respond(tx, req, 408, "Request Timeout")
		return
	}
	s.respond(tx, req, res.StatusCode, res.Reason)
}

// toTrunk builds the member's request as the number's trunk gets it: to
// dest at the trunk, From and P-Asserted-Identity the shared number, no
// credentials, our Via on top.
func (s *Server) toTrunk(req *sip.Request, number, dest string) (*sip.Request, error) {
	snap := s.dir.Snapshot()
	trunk, ok := snap.OutboundTrunk(number)
	if !ok {
		return nil, fmt.Errorf("no trunk for %s: set one with \"partyline number set-trunk\"", number)
	}
	target, err := resolveHostPort(trunk.Address)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(trunk.Address)
	r := req.Clone()
	r.Recipient = sip.Uri{Scheme: "sip", User: dest, Host: host, Port: int(target.Port())}
	removeHeaders(r, credentialHeaders...)
	removeHeaders(r, assertedIdentity...)
	removeHeaders(r, "Route")
	from := cloneFrom(req.From())
	from.Address = sip.Uri{Scheme: "sip", User: number, Host: host}
	from.DisplayName = ""
	if n, ok := snap.Number(number); ok {
		from.DisplayName = n.Name
	}
	r.ReplaceHeader(from)
	r.ReplaceHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: dest, Host: host}, Params: req.To().Params.Clone()})
	r.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<sip:"+number+"@"+host+">"))
	mf := sip.MaxForwardsHeader(69)
	if h := req.MaxForwards(); h != nil && h.Val() > 0 {
		mf = sip.MaxForwardsHeader(h.Val() - 1)
	}
	r.RemoveHeader("Max-Forwards")
	r.AppendHeader(&mf)
	vh, vp := s.advertised(req)
	s.viaTo(r, vh, vp, "UDP", target.String())
	return r, nil
}

// messageUser passes a user's text to another user's devices (not part of
// any shared inbox): 200 when one took it, else the best failure, 480
// when none is registered.
func (s *Server) messageUser(req *sip.Request, tx sip.ServerTransaction, caller, callee string) {
	if len(s.loc.Lookup(callee)) == 0 {
		s.respond(tx, req, 480, "Temporarily Unavailable")
		return
	}
	src, _ := netip.ParseAddrPort(req.Source())
	ds := s.sendToDevices([]string{callee}, src.String(), func(_ string, b location.Binding) (*sip.Request, error) {
		r, err := s.branchRequest(req, b)
		if err == nil {
			r.RemoveHeader("Record-Route")
			removeHeaders(r, credentialHeaders...)
			removeHeaders(r, assertedIdentity...)
			r.ReplaceHeader(s.userFrom(req, caller))
			r.AppendHeader(sip.NewHeader("P-Asserted-Identity", s.userPAI(caller)))
		}
		return r, err
	})
	best := 0
	for _, d := range ds {
		if d.Outcome == inbox.DeliveryDelivered {
			s.respond(tx, req, 200, "OK")
			return
		}
		if d.Status != 0 && (best == 0 || better(d.Status, best)) {
			best = d.Status
		}
	}
	if best == 0 {
		s.respond(tx, req, 480, "Temporarily Unavailable")
		return
	}
	s.respond(tx, req, best, reasonPhrase(best))
}

// reasonPhrase is RFC 3261's phrase for the failures a device may give.
func reasonPhrase(code int) string {
	switch code {
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 415:
		return "Unsupported Media Type"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 488:
		return "Not Acceptable Here"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	}
	return "Request Failed"
}

// SendText sends a text from member as the shared number to dest through
// the number's trunk (the CLI's "message send"), stored first with the
// member, and returns it with the trunk's answer as its status.
func (s *Server) SendText(number, member, dest, text string) (inbox.Message, error) {
	texts := s.texts
	if s.dir.Snapshot().MemberRole(number, member) == acl.RoleNone {
		return inbox.Message{}, fmt.Errorf("%s is not a member of %s", member, number)
	}
	host, port := s.advertisedLocal()
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: dest, Host: host, Port: port})
	fh := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: number, Host: host}, Params: sip.NewParams()}
	fh.Params.Add("tag", newBranchID()[len(branchPrefix):])
	callID := sip.CallIDHeader(newBranchID()[len(branchPrefix):] + "@partyline")
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: dest, Host: host}, Params: sip.NewParams()})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.MESSAGE})
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain;charset=UTF-8"))
	req.SetBody([]byte(text))
	fwd, err := s.toTrunk(req, number, dest)
	if err != nil {
		return inbox.Message{}, err
	}
	m := &inbox.Message{ID: texts.NewID(), Number: number, Party: dest, Direction: "outbound", Member: member,
		Text: text, ContentType: "text/plain", At: s.Now().UTC(), Status: inbox.MsgSending, CallID: string(callID)}
	if err := texts.SaveMessage(m); err != nil {
		return inbox.Message{}, err
	}
	s.typingClear(number, dest, member)
	s.settleOut(texts, m, s.sendFinal(fwd))
	return *m, nil
}

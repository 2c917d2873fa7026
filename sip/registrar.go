package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/partyline/partyline/location"
)

// register is the registrar (RFC 3261 §10.3) for an authenticated user.
func (s *Server) register(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, user string) {
	to, from := req.To(), req.From()
	if !sipScheme(to.Address.Scheme) || !sipScheme(from.Address.Scheme) {
		s.respond(tx, req, 400, "Bad To or From URI")
		return
	}
	if to.Address.User != user {
		// The credentials are good but for another user's address of record.
		s.respond(tx, req, 403, "Forbidden")
		return
	}
	defaultExpires := s.DefaultExpires
	if h := req.GetHeader("Expires"); h != nil {
		n, _ := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32) // range checked in admission
		defaultExpires = time.Duration(n) * time.Second
	}
	u := location.Update{
		CallID:    req.CallID().Value(),
		CSeq:      req.CSeq().SeqNo,
		Source:    src.String(),
		Transport: strings.ToLower(req.Transport()),
	}
	if h := req.GetHeader("User-Agent"); h != nil {
		u.UserAgent = h.Value()
	}
	contacts := req.GetHeaders("Contact")
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			s.respond(tx, req, 400, "Bad Contact")
			return
		}
		if c.Address.Wildcard {
			// Contact: * only alone and with Expires: 0 (RFC 3261 §10.2.2).
			if len(contacts) != 1 || req.GetHeader("Expires") == nil || defaultExpires != 0 {
				s.respond(tx, req, 400, "Bad Wildcard Contact")
				return
			}
			u.RemoveAll = true
			continue
		}
		if !sipScheme(c.Address.Scheme) {
			s.respond(tx, req, 400, "Bad Contact URI")
			return
		}
		exp := defaultExpires
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				s.respond(tx, req, 400, "Bad Contact Expires")
				return
			}
			exp = time.Duration(n) * time.Second
		}
		if exp > 0 && exp < s.MinExpires {
			res := sip.NewResponseFromRequest(req, 423, "Interval Too Brief", nil)
			res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(s.MinExpires/time.Second))))
			tx.Respond(res)
			return
		}
		exp = min(exp, s.MaxExpires)
		u.Contacts = append(u.Contacts, location.Contact{URI: c.Address.String(), Expires: exp})
	}
	var bindings []location.Binding
	var err error
	if len(u.Contacts) == 0 && !u.RemoveAll {
		bindings = s.loc.Lookup(user) // a query
	} else {
		bindings, err = s.loc.Apply(user, u)
	}
	switch {
	case errors.Is(err, location.ErrOutOfOrder):
		s.respond(tx, req, 400, "Invalid CSeq Number")
		return
	case err != nil:
		s.Log.Error("storing bindings", "user", user, "call_id", u.CallID, "error", err)
		s.respond(tx, req, 500, "Server Internal Error")
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	now := s.loc.Now()
	for _, b := range bindings {
		left := int(b.Expires.Sub(now).Round(time.Second) / time.Second)
		res.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<%s>;expires=%d", b.Contact, max(left, 0))))
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")))
	if err := tx.Respond(res); err != nil {
		s.Log.Debug("respond failed", "call_id", u.CallID, "status", 200, "error", err)
	}
}

func sipScheme(s string) bool {
	s = strings.ToLower(s)
	return s == "sip" || s == "sips"
}

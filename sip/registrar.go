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

// register answers a REGISTER in its transaction.
func (s *Server) register(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, user string) {
	res := s.registerResponse(req, src, user)
	if err := tx.Respond(res); err != nil {
		s.Log.Debug("respond failed", "call_id", req.CallID().Value(), "status", res.StatusCode, "error", err)
	}
}

// registerResponse is the registrar (RFC 3261 §10.3) for an authenticated
// user: it applies the REGISTER and returns the answer.
func (s *Server) registerResponse(req *sip.Request, src netip.AddrPort, user string) *sip.Response {
	to, from := req.To(), req.From()
	if !sipScheme(to.Address.Scheme) || !sipScheme(from.Address.Scheme) {
		return newResponse(req, 400, "Bad To or From URI")
	}
	if to.Address.User != user {
		// The credentials are good but for another user's address of record.
		return newResponse(req, 403, "Forbidden")
	}
	defaultExpires := s.DefaultExpires
	if h := headerNamed(req, "Expires"); h != nil {
		n, _ := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32) // range checked in admission
		defaultExpires = time.Duration(n) * time.Second
	}
	u := location.Update{
		CallID:    req.CallID().Value(),
		CSeq:      req.CSeq().SeqNo,
		Source:    src.String(),
		Transport: strings.ToLower(req.Transport()),
	}
	if h := headerNamed(req, "User-Agent"); h != nil {
		u.UserAgent = h.Value()
	}
	contacts := req.GetHeaders("Contact")
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return newResponse(req, 400, "Bad Contact")
		}
		if c.Address.Wildcard {
			// Contact: * only alone and with Expires: 0 (RFC 3261 §10.2.2).
			if len(contacts) != 1 || headerNamed(req, "Expires") == nil || defaultExpires != 0 {
				return newResponse(req, 400, "Bad Wildcard Contact")
			}
			u.RemoveAll = true
			continue
		}
		if !sipScheme(c.Address.Scheme) {
			return newResponse(req, 400, "Bad Contact URI")
		}
		exp := defaultExpires
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return newResponse(req, 400, "Bad Contact Expires")
			}
			exp = time.Duration(n) * time.Second
		}
		if exp > 0 && exp < s.MinExpires {
			res := newResponse(req, 423, "Interval Too Brief")
			res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(s.MinExpires/time.Second))))
			return res
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
		return newResponse(req, 400, "Invalid CSeq Number")
	case err != nil:
		s.Log.Error("storing bindings", "user", user, "call_id", u.CallID, "error", err)
		return newResponse(req, 500, "Server Internal Error")
	}
	res := newResponse(req, 200, "OK")
	now := s.Now()
	for _, b := range bindings {
		left := int(b.Expires.Sub(now).Round(time.Second) / time.Second)
		res.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<%s>;expires=%d", b.Contact, max(left, 0))))
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")))
	return res
}

func sipScheme(s string) bool {
	s = strings.ToLower(s)
	return s == "sip" || s == "sips"
}

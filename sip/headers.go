package sip

// Header names are case-insensitive, and many have a compact form (RFC 3261
// §7.3.3, and the extensions that registered one). sipgo's GetHeader
// ignores case but knows no compact form of a header it does not parse,
// and its RemoveHeader matches the name exactly as sent: a loop "while
// GetHeader(n) != nil, RemoveHeader(n)" never ends on "remote-party-id:".
// Every header this package reads or strips by name goes through the
// helpers here, which match case-insensitively and by compact form and
// never loop over message content without a bound.

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// compactForms maps a header's compact form to its long name, lower case
// (RFC 3261 §7.3.3 and the IANA SIP header registry).
var compactForms = map[string]string{
	"a": "accept-contact",
	"b": "referred-by",
	"c": "content-type",
	"d": "request-disposition",
	"e": "content-encoding",
	"f": "from",
	"i": "call-id",
	"j": "reject-contact",
	"k": "supported",
	"l": "content-length",
	"m": "contact",
	"n": "identity-info",
	"o": "event",
	"r": "refer-to",
	"s": "subject",
	"t": "to",
	"u": "allow-events",
	"v": "via",
	"x": "session-expires",
	"y": "identity",
}

// longName is a header name in lower case, its compact form expanded.
func longName(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	if long, ok := compactForms[name]; ok {
		return long
	}
	return name
}

// sameHeader reports whether two header names name the same header, in
// any case, either in compact form.
func sameHeader(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	return longName(a) == longName(b)
}

// headerLister is what a request and a response share for the helpers.
type headerLister interface {
	Headers() []sip.Header
	RemoveHeader(name string) bool
}

// headerNamed returns the first header of m named name (any case, compact
// form too), or nil.
func headerNamed(m headerLister, name string) sip.Header {
	for _, h := range m.Headers() {
		if sameHeader(h.Name(), name) {
			return h
		}
	}
	return nil
}

// headersNamed returns every header of m named name (any case, compact
// form too), in order.
func headersNamed(m headerLister, name string) []sip.Header {
	var out []sip.Header
	for _, h := range m.Headers() {
		if sameHeader(h.Name(), name) {
			out = append(out, h)
		}
	}
	return out
}

// removeHeaders removes every header of m named one of names, in any case
// or compact form. It makes one RemoveHeader call per header found, each
// with that header's name as sent (RemoveHeader compares exactly), so it
// ends after at most len(m.Headers()) calls.
func removeHeaders(m headerLister, names ...string) {
	var doomed []string
	for _, h := range m.Headers() {
		for _, n := range names {
			if sameHeader(h.Name(), n) {
				doomed = append(doomed, h.Name())
				break
			}
		}
	}
	for _, n := range doomed {
		m.RemoveHeader(n)
	}
}

// assertedIdentity are the headers that claim who a request is from or
// for whom it was redirected, beyond From. Only we set them on what we
// send; a user's request never carries its own (RFC 3325 §5: a proxy
// removes P-Asserted-Identity from an untrusted source).
var assertedIdentity = []string{
	"P-Asserted-Identity", "P-Preferred-Identity", "Remote-Party-ID",
	"Diversion", "History-Info", "P-Charge-Info",
}

// credentialHeaders carry digest credentials meant for us; they never go
// further.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization"}

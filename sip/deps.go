package sip

// What the server needs from the rest of partyline: every store by an
// explicit interface, each required.

import (
	"github.com/partyline/partyline/location"
)

// New returns a server for the directory, location store and call log;
// set its fields, then Start and Serve.
func New(d Deps) *Server {
	return &Server{dir: d.Directory, loc: d.Location, calls: d.Calls, texts: d.Texts, vmStore: d.Voicemail, contacts: d.Contacts}
}

// Deps are the stores the server works on. Each is required: Start fails
// naming the one missing, so no feature is ever silently off.
type Deps struct {
	Directory Directory      // users, numbers, trunks, who rings (acl.Directory)
	Location  Location       // where users' phones are registered (location.Store)
	Calls     CallLog        // call history (inbox.Store)
	Texts     Texts          // texts in and out (inbox.Store)
	Voicemail VoicemailStore // voicemail, greetings and message counts (inbox.Store)
	Contacts  ContactBook    // the shared address book, to name callers (inbox.Store)
}

// Location is what the server needs of the registrar's bindings;
// location.Store satisfies it, and a clustered store could.
type Location interface {
	Lookup(user string) []location.Binding
	Apply(user string, u location.Update) ([]location.Binding, error)
	Sweep() (int, error)
}

// missing names the first dependency not given.
func (d Deps) missing() string {
	switch {
	case d.Directory == nil:
		return "Directory"
	case d.Location == nil:
		return "Location"
	case d.Calls == nil:
		return "Calls"
	case d.Texts == nil:
		return "Texts"
	case d.Voicemail == nil:
		return "Voicemail"
	case d.Contacts == nil:
		return "Contacts"
	}
	return ""
}

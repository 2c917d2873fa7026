package sip

import (
	"strings"
	"testing"
)

// TestStartNeedsEveryStore: a store left out is an error at Start that
// names it, never a feature silently off.
func TestStartNeedsEveryStore(t *testing.T) {
	e := newEnv(t, nil)
	full := Deps{Directory: e.dir, Location: e.loc, Calls: e.inbox, Texts: e.inbox, Voicemail: e.inbox, Contacts: e.inbox}
	for _, name := range []string{"Directory", "Location", "Calls", "Texts", "Voicemail", "Contacts"} {
		d := full
		switch name {
		case "Directory":
			d.Directory = nil
		case "Location":
			d.Location = nil
		case "Calls":
			d.Calls = nil
		case "Texts":
			d.Texts = nil
		case "Voicemail":
			d.Voicemail = nil
		case "Contacts":
			d.Contacts = nil
		}
		s := New(d)
		s.Listen = []string{"127.0.0.1:0"}
		err := s.Start()
		if err == nil {
			s.closeSockets()
			t.Fatalf("Start without %s: no error", name)
		}
		if !strings.Contains(err.Error(), "sip.Deps."+name) {
			t.Errorf("Start without %s: %v", name, err)
		}
	}
}

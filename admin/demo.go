package admin

import (
	"crypto/rand"
	"fmt"

	"github.com/partyline/partyline/acl"
)

// Demo is what SeedDemo created, to show the operator once.
type Demo struct {
	Realm     string
	Users     []DemoUser
	Number    string
	NumberFor string
	Trunk     TrunkView
}

// DemoUser is one seeded user and the password generated for them.
type DemoUser struct {
	Name, Role, Password string
}

// DemoNumber is the seeded shared number (555-01xx numbers are fictional).
const DemoNumber = "+15555550100"

// SeedDemo fills an empty workspace with a small demo: an owner, two members
// with generated passwords, one shared number and a loopback trunk. ok is
// false, and nothing changes, when the workspace is not empty.
func (s *Service) SeedDemo() (d Demo, ok bool, err error) {
	snap := s.dir.Snapshot()
	if len(snap.Users()) > 0 || len(snap.Numbers()) > 0 || len(snap.Trunks()) > 0 {
		return d, false, nil
	}
	d.Realm = snap.Realm()
	for _, u := range []struct{ name, role string }{{"olivia", "owner"}, {"alice", "member"}, {"bob", "member"}} {
		role, _ := acl.ParseRole(u.role)
		pw := rand.Text()[:16]
		if err := s.dir.AddUser("", acl.NewUser{Name: u.name, Password: pw, Role: role}); err != nil {
			return d, false, err
		}
		d.Users = append(d.Users, DemoUser{Name: u.name, Role: u.role, Password: pw})
	}
	e, err := s.dir.AddNumber("", DemoNumber, "Demo line")
	if err != nil {
		return d, false, err
	}
	d.Number = e
	for i, u := range d.Users {
		role := acl.RoleMember
		if i == 0 {
			role = acl.RoleOwner
		}
		if err := s.dir.AddMember("", e, u.Name, role); err != nil {
			return d, false, err
		}
	}
	if err := s.dir.AddTrunk("", "loopback", "127.0.0.1:5080", []string{"127.0.0.1:5080"}); err != nil {
		return d, false, err
	}
	t, _ := s.dir.Snapshot().Trunk("loopback")
	d.Trunk = trunkView(t)
	s.changed("", "demo.seed", "number", e)
	return d, true, nil
}

// String is the demo as shown to the operator, with the passwords.
func (d Demo) String() string {
	s := fmt.Sprintf("Demo workspace created (realm %q). Passwords are shown only now:\n", d.Realm)
	for _, u := range d.Users {
		s += fmt.Sprintf("  %-7s %-7s password %s\n", u.Name, u.Role, u.Password)
	}
	s += fmt.Sprintf("  shared number %s \"Demo line\": olivia (owner), alice, bob\n", d.Number)
	s += fmt.Sprintf("  trunk loopback: calls out to %s, trusts traffic from %v\n", d.Trunk.Address, d.Trunk.Allow)
	return s
}

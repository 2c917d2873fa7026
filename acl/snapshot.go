package acl

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
)

// Snapshot is the directory as of one committed change. It is never
// modified once published: read it from any goroutine without locks.
type Snapshot struct {
	realm   string
	plan    Plan
	users   map[string]*User
	numbers map[string]*Number
	trunks  map[string]*Trunk
}

func newSnapshot() *Snapshot {
	return &Snapshot{
		users:   map[string]*User{},
		numbers: map[string]*Number{},
		trunks:  map[string]*Trunk{},
	}
}

// clone copies the maps, sharing the records; a change replaces a record
// instead of editing it.
func (s *Snapshot) clone() *Snapshot {
	return &Snapshot{
		realm:   s.realm,
		plan:    s.plan,
		users:   maps.Clone(s.users),
		numbers: maps.Clone(s.numbers),
		trunks:  maps.Clone(s.trunks),
	}
}

// Realm is the digest realm the users' HA1 values are computed for.
func (s *Snapshot) Realm() string { return s.realm }

// Plan is the workspace plan.
func (s *Snapshot) Plan() Plan { return s.plan }

// User returns a copy of the named user.
func (s *Snapshot) User(name string) (User, bool) {
	u, ok := s.users[name]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// Users returns every user, by name.
func (s *Snapshot) Users() []User {
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Number returns a copy of the number (E.164 as stored).
func (s *Snapshot) Number(e164 string) (Number, bool) {
	n, ok := s.numbers[e164]
	if !ok {
		return Number{}, false
	}
	c := *n
	c.Members = slices.Clone(n.Members)
	return c, true
}

// Numbers returns every number, by E.164.
func (s *Snapshot) Numbers() []Number {
	out := make([]Number, 0, len(s.numbers))
	for _, n := range s.numbers {
		c := *n
		c.Members = slices.Clone(n.Members)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].E164 < out[j].E164 })
	return out
}

// NumbersOf returns the numbers the user is a member of, by E.164.
func (s *Snapshot) NumbersOf(user string) []string {
	var out []string
	for e, n := range s.numbers {
		if n.Role(user) != RoleNone {
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}

// MemberRole returns the user's role on the number (RoleNone if either is unknown).
func (s *Snapshot) MemberRole(e164, user string) Role {
	if n, ok := s.numbers[e164]; ok {
		return n.Role(user)
	}
	return RoleNone
}

// Trunks returns every trunk, by name.
func (s *Snapshot) Trunks() []Trunk {
	out := make([]Trunk, 0, len(s.trunks))
	for _, t := range s.trunks {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Trunk returns the named trunk.
func (s *Snapshot) Trunk(name string) (Trunk, bool) {
	t, ok := s.trunks[name]
	if !ok {
		return Trunk{}, false
	}
	return *t, true
}

// TrunkFor returns the trunk whose allow list trusts src. When several
// match, an exact IP:PORT entry wins over a prefix, then the longest prefix,
// then the first name.
func (s *Snapshot) TrunkFor(src netip.AddrPort) (Trunk, bool) {
	var best *Trunk
	bestScore := -1
	a := src.Addr().Unmap()
	for _, t := range s.trunks {
		score := -1
		for _, e := range t.exact {
			if e.Addr() == a && e.Port() == src.Port() {
				score = 1000
			}
		}
		for _, p := range t.prefixes {
			if p.Contains(a) && p.Bits() > score {
				score = p.Bits()
			}
		}
		if score > bestScore || (score == bestScore && score >= 0 && t.Name < best.Name) {
			best, bestScore = t, score
		}
	}
	if best == nil || bestScore < 0 {
		return Trunk{}, false
	}
	return *best, true
}

// Actor resolves who acts: the operator for "", else the named user.
func (s *Snapshot) Actor(as string) (Actor, error) {
	if as == "" {
		return Operator, nil
	}
	u, ok := s.users[as]
	if !ok {
		return Actor{}, fmt.Errorf("%w: unknown user %q given with --as: see \"partyline user list\"", ErrNotFound, as)
	}
	return Actor{Name: u.Name, Role: u.Role}, nil
}

func (s *Snapshot) owners() int {
	c := 0
	for _, u := range s.users {
		if u.Role == RoleOwner {
			c++
		}
	}
	return c
}

package acl

// Changes to numbers: adding and removing them, their settings, their
// members and roles, their call flow and outbound trunk.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// AddNumber adds a shared number and returns its E.164 form.
func (d *Directory) AddNumber(as, number, name string) (string, error) {
	e, err := NormalizeE164(number)
	if err != nil {
		return "", err
	}
	if err := checkDisplayName(name); err != nil {
		return "", err
	}
	return e, d.update(as, func(c *change) error {
		if err := Decide(c.actor, NumberAdd, Target{}); err != nil {
			return err
		}
		if _, ok := c.cur.numbers[e]; ok {
			return fmt.Errorf("%w: number %s: see \"partyline number show %s\"", ErrExists, e, e)
		}
		c.putNumber(&Number{E164: e, Name: name, Members: []Member{}, Created: c.now})
		return nil
	})
}

func checkDisplayName(s string) error {
	if len(s) > 128 || strings.ContainsAny(s, "\r\n\x00\"") {
		return fmt.Errorf("%w: bad name %q: at most 128 characters, no quotes or line breaks", ErrInvalid, s)
	}
	return nil
}

// RemoveNumber deletes a number and its memberships.
func (d *Directory) RemoveNumber(as, number string) error {
	return d.update(as, func(c *change) error {
		n, err := c.number(number)
		if err != nil {
			return err
		}
		if err := Decide(c.actor, NumberRemove, Target{}); err != nil {
			return err
		}
		c.delNumber(n.E164)
		return nil
	})
}

// SetNumberName changes a number's display name (a number setting).
func (d *Directory) SetNumberName(as, number, name string) error {
	if err := checkDisplayName(name); err != nil {
		return err
	}
	return d.update(as, func(c *change) error {
		n, err := c.numberFor(number, NumberSettings, RoleNone)
		if err != nil {
			return err
		}
		nn := *n
		nn.Name = name
		c.putNumber(&nn)
		return nil
	})
}

// SetNumberDecline sets what a phone's decline does to the number's calls
// (DeclineEverywhere or DeclinePersonal; a number setting).
func (d *Directory) SetNumberDecline(as, number, decline string) error {
	switch decline {
	case DeclineEverywhere, DeclinePersonal:
	default:
		return fmt.Errorf("%w: bad --decline %q: use everywhere or personal", ErrInvalid, decline)
	}
	return d.update(as, func(c *change) error {
		n, err := c.numberFor(number, NumberSettings, RoleNone)
		if err != nil {
			return err
		}
		nn := *n
		nn.Decline = decline
		if decline == DeclineEverywhere {
			nn.Decline = ""
		}
		c.putNumber(&nn)
		return nil
	})
}

// AddMember adds a user to a number (as member when role is RoleNone).
func (d *Directory) AddMember(as, number, user string, role Role) error {
	if role == RoleNone {
		role = RoleMember
	}
	return d.update(as, func(c *change) error {
		n, err := c.number(number)
		if err != nil {
			return err
		}
		if _, err := c.user(user); err != nil {
			return err
		}
		if err := Decide(c.actor, MemberAdd, Target{NumberRole: n.Role(c.actor.Name), NewRole: role}); err != nil {
			return err
		}
		if r := n.Role(user); r != RoleNone {
			return fmt.Errorf("%w: %s is already a %s of %s: change the role with \"partyline number member set-role %s %s ROLE\"", ErrExists, user, r, n.E164, n.E164, user)
		}
		p := c.cur.plan
		if limit := p.MaxUsersPerNumber(); len(n.Members) >= limit {
			fix := "upgrade with \"partyline plan set business\" or remove a member"
			if p == PlanBusiness {
				fix = "remove a member"
			}
			return fmt.Errorf("%w: %s already has %d users, the most the %s plan allows per number: %s (\"partyline number member remove %s USER\")", ErrPlanLimit, n.E164, len(n.Members), p, fix, n.E164)
		}
		nn := *n
		nn.Members = append(slices.Clone(n.Members), Member{User: user, Role: role, Added: c.now})
		c.putNumber(&nn)
		return nil
	})
}

// RemoveMember removes a user from a number; the last owner stays.
func (d *Directory) RemoveMember(as, number, user string) error {
	return d.update(as, func(c *change) error {
		n, err := c.numberFor(number, MemberRemove, RoleNone)
		if err != nil {
			return err
		}
		r := n.Role(user)
		if r == RoleNone {
			return fmt.Errorf("%w: %s is not a member of %s: see \"partyline number show %s\"", ErrNotFound, user, n.E164, n.E164)
		}
		if r == RoleOwner && n.owners() == 1 {
			return fmt.Errorf("%w: %s is the last owner of %s: make another member owner first (\"partyline number member set-role %s USER owner\")", ErrLastOwner, user, n.E164, n.E164)
		}
		nn := *n
		nn.Members = slices.DeleteFunc(slices.Clone(n.Members), func(m Member) bool { return m.User == user })
		c.putNumber(&nn)
		if u := c.cur.users[user]; u != nil && u.DefaultNumber == n.E164 {
			nu := *u
			nu.DefaultNumber = ""
			c.putUser(&nu)
		}
		return nil
	})
}

// SetMemberRole changes a member's role on a number; the last owner stays.
func (d *Directory) SetMemberRole(as, number, user string, role Role) error {
	if role == RoleNone {
		return fmt.Errorf("%w: bad role: use owner, admin or member", ErrInvalid)
	}
	return d.update(as, func(c *change) error {
		n, err := c.numberFor(number, MemberSetRole, role)
		if err != nil {
			return err
		}
		r := n.Role(user)
		if r == RoleNone {
			return fmt.Errorf("%w: %s is not a member of %s: add them with \"partyline number member add %s %s\"", ErrNotFound, user, n.E164, n.E164, user)
		}
		if r == role {
			return nil
		}
		if r == RoleOwner && n.owners() == 1 {
			return fmt.Errorf("%w: %s is the last owner of %s: make another member owner first", ErrLastOwner, user, n.E164)
		}
		nn := *n
		nn.Members = slices.Clone(n.Members)
		for i := range nn.Members {
			if nn.Members[i].User == user {
				nn.Members[i].Role = role
			}
		}
		c.putNumber(&nn)
		return nil
	})
}

// ParseStep reads USER[,USER...][:SECONDS].
func ParseStep(s string) (Step, error) {
	users, secs, hasSecs := strings.Cut(s, ":")
	st := Step{Seconds: DefaultRingSeconds}
	if hasSecs {
		n, err := strconv.Atoi(secs)
		if err != nil || n < 5 || n > 300 {
			return st, fmt.Errorf("%w: bad ring time in step %q: use 5 to 300 seconds, e.g. alice,bob:20", ErrInvalid, s)
		}
		st.Seconds = n
	}
	for _, u := range strings.Split(users, ",") {
		u = strings.TrimSpace(u)
		if err := CheckName("user", u); err != nil {
			return st, fmt.Errorf("%w: bad step %q: use USER[,USER...][:SECONDS]", ErrInvalid, s)
		}
		if !slices.Contains(st.Users, u) {
			st.Users = append(st.Users, u)
		}
	}
	return st, nil
}

// SetFlow replaces a number's call flow; nil steps restore the default.
func (d *Directory) SetFlow(as, number string, steps []Step, then string) error {
	if then == "" {
		then = ThenVoicemail
	}
	if then != ThenVoicemail && then != ThenHangup {
		return fmt.Errorf("%w: bad --then %q: use voicemail or hangup", ErrInvalid, then)
	}
	for i, st := range steps {
		if len(st.Users) > RingCap {
			return fmt.Errorf("%w: step %d has %d people; at most %d ring at once on every plan: split it into two steps", ErrInvalid, i+1, len(st.Users), RingCap)
		}
	}
	return d.update(as, func(c *change) error {
		n, err := c.numberFor(number, NumberSettings, RoleNone)
		if err != nil {
			return err
		}
		for _, st := range steps {
			for _, u := range st.Users {
				if n.Role(u) == RoleNone {
					return fmt.Errorf("%w: %s is not a member of %s: add them first (\"partyline number member add %s %s\")", ErrNotFound, u, n.E164, n.E164, u)
				}
			}
		}
		nn := *n
		nn.Flow = nil
		if len(steps) > 0 {
			nn.Flow = &Flow{Steps: slices.Clone(steps), Then: then}
		}
		c.putNumber(&nn)
		return nil
	})
}

// SetNumberTrunk names the trunk that carries a number's outbound calls.
func (d *Directory) SetNumberTrunk(as, number, trunk string) error {
	return d.update(as, func(c *change) error {
		n, err := c.numberFor(number, NumberSettings, RoleNone)
		if err != nil {
			return err
		}
		if _, ok := c.cur.trunks[trunk]; !ok {
			return fmt.Errorf("%w: unknown trunk %q: see \"partyline trunk list\"", ErrNotFound, trunk)
		}
		nn := *n
		nn.Trunk = trunk
		c.putNumber(&nn)
		return nil
	})
}

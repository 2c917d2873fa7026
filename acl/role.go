package acl

import (
	"fmt"
	"strings"
)

// Role is a user's role in the workspace or on one number. The zero Role is
// "none": not a member.
type Role uint8

// Roles, least to most.
const (
	RoleNone Role = iota
	RoleMember
	RoleAdmin
	RoleOwner
)

// String returns the role's name as the CLI spells it.
func (r Role) String() string {
	switch r {
	case RoleMember:
		return "member"
	case RoleAdmin:
		return "admin"
	case RoleOwner:
		return "owner"
	}
	return "none"
}

// ParseRole reads owner, admin or member (any case).
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "owner":
		return RoleOwner, nil
	case "admin":
		return RoleAdmin, nil
	case "member":
		return RoleMember, nil
	}
	return RoleNone, fmt.Errorf("%w: bad role %q: use owner, admin or member", ErrInvalid, s)
}

// MarshalText writes the role's name.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a role's name; "none" or empty is RoleNone.
func (r *Role) UnmarshalText(b []byte) error {
	if s := string(b); s == "" || s == "none" {
		*r = RoleNone
		return nil
	}
	v, err := ParseRole(string(b))
	*r = v
	return err
}

// Plan is the workspace's subscription plan.
type Plan uint8

// Plans.
const (
	PlanStarter Plan = iota
	PlanBusiness
)

// RingCap is how many people ring at once for one call, on every plan.
const RingCap = 10

// MaxUsersPerNumber is how many users one number may have on the plan.
func (p Plan) MaxUsersPerNumber() int {
	if p == PlanBusiness {
		return 100
	}
	return 10
}

// String returns the plan's name as the CLI spells it.
func (p Plan) String() string {
	if p == PlanBusiness {
		return "business"
	}
	return "starter"
}

// ParsePlan reads starter or business.
func ParsePlan(s string) (Plan, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "starter":
		return PlanStarter, nil
	case "business":
		return PlanBusiness, nil
	}
	return PlanStarter, fmt.Errorf("%w: bad plan %q: use starter or business", ErrInvalid, s)
}

// MarshalText writes the plan's name.
func (p Plan) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a plan's name.
func (p *Plan) UnmarshalText(b []byte) error {
	v, err := ParsePlan(string(b))
	*p = v
	return err
}

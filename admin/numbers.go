package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/partyline/partyline/acl"
)

// Operations on the shared numbers and their members.
const (
	OpNumberAdd      = "number.add"
	OpNumberList     = "number.list"
	OpNumberShow     = "number.show"
	OpNumberSet      = "number.set"
	OpNumberRemove   = "number.remove"
	OpMemberAdd      = "number.member.add"
	OpMemberRemove   = "number.member.remove"
	OpMemberSetRole  = "number.member.set-role"
	OpNumberSetTrunk = "number.set-trunk"
)

type (
	NumberArgs struct {
		Number  string  `json:"number"`
		Name    *string `json:"name,omitempty"`
		Decline *string `json:"decline,omitempty"`
	}
	MemberArgs struct {
		Number string `json:"number"`
		User   string `json:"user"`
		Role   string `json:"role,omitempty"`
	}
	TrunkOfArgs struct {
		Number string `json:"number"`
		Trunk  string `json:"trunk,omitempty"`
		User   string `json:"user,omitempty"`
	}
	NumberView struct {
		Number   string       `json:"number"`
		Name     string       `json:"name"`
		Decline  string       `json:"decline"`
		Users    int          `json:"users"`
		MaxUsers int          `json:"max_users"`
		Members  []MemberView `json:"members"`
	}
	MemberView struct {
		User    string         `json:"user"`
		Role    string         `json:"role"`
		Added   time.Time      `json:"added"`
		Devices []Registration `json:"devices"`
		// WouldRing: a call now would ring this member (a registered
		// device, and a step of the number's flow names them).
		WouldRing bool `json:"would_ring"`
	}
)

func numberOps() map[string]opFunc {
	return map[string]opFunc{
		OpNumberAdd: typed(func(ctx context.Context, s *Service, as string, a NumberArgs) (any, error) {
			name := ""
			if a.Name != nil {
				name = *a.Name
			}
			e, err := s.dir.AddNumber(as, a.Number, name)
			if err != nil {
				return nil, err
			}
			s.changed(as, OpNumberAdd, "number", e)
			return s.numberView(s.dir.Snapshot(), e), nil
		}),
		OpNumberList: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
			snap := s.dir.Snapshot()
			actor, err := snap.Actor(as)
			if err != nil {
				return nil, err
			}
			out := []NumberView{}
			for _, n := range snap.Numbers() {
				if acl.Decide(actor, acl.NumberView, acl.Target{NumberRole: n.Role(actor.Name)}) == nil {
					out = append(out, s.numberView(snap, n.E164))
				}
			}
			return out, nil
		}),
		OpNumberShow: typed(func(ctx context.Context, s *Service, as string, a NumberArgs) (any, error) {
			snap, _, n, err := s.numberFor(as, a.Number, acl.NumberView)
			if err != nil {
				return nil, err
			}
			return s.numberView(snap, n.E164), nil
		}),
		OpNumberSet: typed(func(ctx context.Context, s *Service, as string, a NumberArgs) (any, error) {
			if a.Name == nil && a.Decline == nil {
				return nil, fmt.Errorf("%w: nothing to change: give --name TEXT or --decline everywhere|personal", acl.ErrInvalid)
			}
			if a.Name != nil {
				if err := s.dir.SetNumberName(as, a.Number, *a.Name); err != nil {
					return nil, err
				}
			}
			if a.Decline != nil {
				if err := s.dir.SetNumberDecline(as, a.Number, *a.Decline); err != nil {
					return nil, err
				}
			}
			e, _ := acl.NormalizeE164(a.Number)
			s.changed(as, OpNumberSet, "number", e)
			return s.numberView(s.dir.Snapshot(), e), nil
		}),
		OpNumberRemove: typed(func(ctx context.Context, s *Service, as string, a NumberArgs) (any, error) {
			if err := s.dir.RemoveNumber(as, a.Number); err != nil {
				return nil, err
			}
			e, _ := acl.NormalizeE164(a.Number)
			s.changed(as, OpNumberRemove, "number", e)
			return Done{"removed number " + e}, nil
		}),
		OpMemberAdd: typed(func(ctx context.Context, s *Service, as string, a MemberArgs) (any, error) {
			role, err := roleOrMember(a.Role)
			if err != nil {
				return nil, err
			}
			return s.memberChange(as, OpMemberAdd, a, role, s.dir.AddMember)
		}),
		OpMemberRemove: typed(func(ctx context.Context, s *Service, as string, a MemberArgs) (any, error) {
			if err := s.dir.RemoveMember(as, a.Number, a.User); err != nil {
				return nil, err
			}
			e, _ := acl.NormalizeE164(a.Number)
			s.changed(as, OpMemberRemove, "number", e, "target", a.User)
			return Done{"removed " + a.User + " from " + e}, nil
		}),
		OpMemberSetRole: typed(func(ctx context.Context, s *Service, as string, a MemberArgs) (any, error) {
			r, err := acl.ParseRole(a.Role)
			if err != nil {
				return nil, err
			}
			return s.memberChange(as, OpMemberSetRole, a, r, s.dir.SetMemberRole)
		}),
		OpNumberSetTrunk: typed(func(ctx context.Context, s *Service, as string, a TrunkOfArgs) (any, error) {
			if err := s.dir.SetNumberTrunk(as, a.Number, a.Trunk); err != nil {
				return nil, err
			}
			e, _ := acl.NormalizeE164(a.Number)
			s.changed(as, OpNumberSetTrunk, "number", e, "trunk", a.Trunk)
			return Done{e + " now calls out through trunk " + a.Trunk}, nil
		}),
	}
}

func (s *Service) memberChange(as, op string, a MemberArgs, role acl.Role, f func(as, number, user string, role acl.Role) error) (any, error) {
	if err := f(as, a.Number, a.User, role); err != nil {
		return nil, err
	}
	e, _ := acl.NormalizeE164(a.Number)
	s.changed(as, op, "number", e, "target", a.User, "role", role.String())
	return s.numberView(s.dir.Snapshot(), e), nil
}

func (s *Service) numberView(snap *acl.Snapshot, e164 string) NumberView {
	n, _ := snap.Number(e164)
	decline := n.Decline
	if decline == "" {
		decline = acl.DeclineEverywhere
	}
	v := NumberView{Number: n.E164, Name: n.Name, Decline: decline, Users: len(n.Members), MaxUsers: snap.Plan().MaxUsersPerNumber(), Members: []MemberView{}}
	for _, m := range n.Members {
		devs := s.registrations(m.User)
		v.Members = append(v.Members, MemberView{User: m.User, Role: m.Role.String(), Added: m.Added, Devices: devs,
			WouldRing: len(devs) > 0 && inFlow(n, m.User)})
	}
	return v
}

package admin

import (
	"context"

	"github.com/partyline/partyline/acl"
)

// Operations on the workspace's plan.
const (
	OpPlanShow = "plan.show"
	OpPlanSet  = "plan.set"
)

type (
	PlanArgs struct {
		Plan string `json:"plan"`
	}
	PlanView struct {
		Plan              string `json:"plan"`
		MaxUsersPerNumber int    `json:"max_users_per_number"`
		RingCap           int    `json:"ring_cap"`
	}
)

func planOps() map[string]opFunc {
	return map[string]opFunc{
		OpPlanShow: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
			snap, _, err := s.may(as, acl.PlanShow)
			if err != nil {
				return nil, err
			}
			return planView(snap.Plan()), nil
		}),
		OpPlanSet: typed(func(ctx context.Context, s *Service, as string, a PlanArgs) (any, error) {
			p, err := acl.ParsePlan(a.Plan)
			if err != nil {
				return nil, err
			}
			if err := s.dir.SetPlan(as, p); err != nil {
				return nil, err
			}
			s.changed(as, OpPlanSet, "plan", p.String())
			return planView(p), nil
		}),
	}
}

func planView(p acl.Plan) PlanView {
	return PlanView{Plan: p.String(), MaxUsersPerNumber: p.MaxUsersPerNumber(), RingCap: acl.RingCap}
}

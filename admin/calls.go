package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/inbox"
)

// Operations on the call history.
const (
	OpCalls    = "calls.list"
	OpCallShow = "calls.show"
)

type CallArgs struct {
	Number string `json:"number,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	ID     string `json:"id,omitempty"`
}

func callOps() map[string]opFunc {
	return map[string]opFunc{
		OpCalls: typed(func(ctx context.Context, s *Service, as string, a CallArgs) (any, error) {
			numbers, err := s.usableNumbers(as, a.Number)
			if err != nil {
				return nil, err
			}
			if a.Limit < 0 || a.Limit > 10000 {
				return nil, fmt.Errorf("%w: bad --limit %d: use 1 to 10000", acl.ErrInvalid, a.Limit)
			}
			return s.box.Calls(numbers, a.Limit)
		}),
		OpCallShow: typed(func(ctx context.Context, s *Service, as string, a CallArgs) (any, error) {
			snap := s.dir.Snapshot()
			actor, err := snap.Actor(as)
			if err != nil {
				return nil, err
			}
			c, err := s.box.Call(a.ID)
			if errors.Is(err, inbox.ErrNotFound) {
				return nil, fmt.Errorf("%w: no call %q: see \"partyline calls\"", acl.ErrNotFound, a.ID)
			}
			if err != nil {
				return nil, err
			}
			if err := acl.Decide(actor, acl.NumberUse, acl.Target{NumberRole: snap.MemberRole(c.Number, actor.Name)}); err != nil {
				if actor.Role == acl.RoleOwner || actor.Role == acl.RoleAdmin {
					return nil, err // managers are told to add themselves
				}
				// Indistinguishable from a missing call for others.
				return nil, fmt.Errorf("%w: no call %q: see \"partyline calls\"", acl.ErrNotFound, a.ID)
			}
			return c, nil
		}),
	}
}

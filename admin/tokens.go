package admin

import (
	"context"
	"sort"
	"time"

	"github.com/partyline/partyline/acl"
)

// Operations on API tokens.
const (
	OpTokenCreate = "token.create"
	OpTokenList   = "token.list"
	OpTokenRevoke = "token.revoke"
)

type (
	TokenArgs struct {
		User string `json:"user,omitempty"`
		Name string `json:"name,omitempty"`
		ID   string `json:"id,omitempty"`
	}
	// TokenView is a token as listed: never its secret or hash.
	TokenView struct {
		ID      string    `json:"id"`
		User    string    `json:"user"`
		Name    string    `json:"name"`
		Created time.Time `json:"created"`
	}
	// TokenCreated is a new token with its secret, shown this once.
	TokenCreated struct {
		TokenView
		Token string `json:"token"`
	}
)

func tokenOps() map[string]opFunc {
	return map[string]opFunc{
		OpTokenCreate: typed(func(ctx context.Context, s *Service, as string, a TokenArgs) (any, error) {
			t, secret, err := s.dir.AddToken(as, a.User, a.Name)
			if err != nil {
				return nil, err
			}
			s.changed(as, OpTokenCreate, "target", a.User, "token", t.ID)
			return TokenCreated{TokenView: TokenView{ID: t.ID, User: a.User, Name: t.Name, Created: t.Created}, Token: secret}, nil
		}),
		// The tokens of the users whose tokens the actor may make: their
		// own; an admin's, those of admins and members; an owner's, all.
		OpTokenList: typed(func(ctx context.Context, s *Service, as string, a TokenArgs) (any, error) {
			snap := s.dir.Snapshot()
			actor, err := snap.Actor(as)
			if err != nil {
				return nil, err
			}
			out := []TokenView{}
			for _, u := range snap.Users() {
				if a.User != "" && u.Name != a.User {
					continue
				}
				if acl.Decide(actor, acl.UserSetPassword, acl.Target{Role: u.Role, Self: actor.Name == u.Name}) != nil {
					continue
				}
				for _, t := range u.Tokens {
					out = append(out, TokenView{ID: t.ID, User: u.Name, Name: t.Name, Created: t.Created})
				}
			}
			sort.SliceStable(out, func(i, j int) bool {
				if out[i].User != out[j].User {
					return out[i].User < out[j].User
				}
				return out[i].Created.Before(out[j].Created)
			})
			return out, nil
		}),
		OpTokenRevoke: typed(func(ctx context.Context, s *Service, as string, a TokenArgs) (any, error) {
			t, user, err := s.dir.RevokeToken(as, a.ID)
			if err != nil {
				return nil, err
			}
			s.changed(as, OpTokenRevoke, "target", user, "token", t.ID)
			return Done{"revoked token " + t.ID + " (" + t.Name + ") of " + user}, nil
		}),
	}
}

package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/partyline/partyline/acl"
)

// OpRegistrations lists registered devices.
const OpRegistrations = "registrations.list"

type (
	RegistrationArgs struct {
		User string `json:"user,omitempty"`
	}
	// Registration is one registered device.
	Registration struct {
		User      string    `json:"user"`
		Contact   string    `json:"contact"`
		Source    string    `json:"source"`
		Transport string    `json:"transport"`
		UserAgent string    `json:"user_agent"`
		ExpiresAt time.Time `json:"expires_at"`
	}
)

func registrationOps() map[string]opFunc {
	return map[string]opFunc{
		OpRegistrations: typed(func(ctx context.Context, s *Service, as string, a RegistrationArgs) (any, error) {
			snap := s.dir.Snapshot()
			actor, err := snap.Actor(as)
			if err != nil {
				return nil, err
			}
			if a.User != "" {
				if _, ok := snap.User(a.User); !ok {
					return nil, fmt.Errorf("%w: unknown user %q: see \"partyline user list\"", acl.ErrNotFound, a.User)
				}
			}
			// Owners and admins see every device; others see their own.
			manager := actor.Operator || actor.Role == acl.RoleOwner || actor.Role == acl.RoleAdmin
			if !manager && a.User != "" && a.User != actor.Name {
				return nil, fmt.Errorf("%w: %s (workspace %s) may see only their own devices: only workspace owners and admins see everyone's", acl.ErrForbidden, actor.Name, actor.Role)
			}
			if !manager {
				a.User = actor.Name
			}
			out := []Registration{}
			for _, u := range snap.Users() {
				if a.User == "" || a.User == u.Name {
					out = append(out, s.registrations(u.Name)...)
				}
			}
			return out, nil
		}),
	}
}

func (s *Service) registrations(user string) []Registration {
	out := []Registration{}
	for _, b := range s.loc.Lookup(user) {
		out = append(out, Registration{User: b.User, Contact: b.Contact, Source: b.Source, Transport: b.Transport, UserAgent: b.UserAgent, ExpiresAt: b.Expires.UTC()})
	}
	return out
}

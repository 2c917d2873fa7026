package admin

import (
	"context"
	"slices"

	"github.com/partyline/partyline/acl"
)

// Operations on the workspace's users.
const (
	OpUserAdd         = "user.add"
	OpUserList        = "user.list"
	OpUserRemove      = "user.remove"
	OpUserSetRole     = "user.set-role"
	OpUserSetPassword = "user.set-password"
	OpUserSetDefault  = "user.set-default-number"
)

type (
	UserArgs struct {
		Name     string `json:"name"`
		Password string `json:"password,omitempty"`
		Role     string `json:"role,omitempty"`
		Email    string `json:"email,omitempty"`
	}
	UserView struct {
		Name    string   `json:"name"`
		Email   string   `json:"email,omitempty"`
		Role    string   `json:"role"`
		Numbers []string `json:"numbers"`
	}
)

func userOps() map[string]opFunc {
	return map[string]opFunc{
		OpUserAdd: typed(func(ctx context.Context, s *Service, as string, a UserArgs) (any, error) {
			role, err := roleOrMember(a.Role)
			if err != nil {
				return nil, err
			}
			if err := s.dir.AddUser(as, acl.NewUser{Name: a.Name, Password: a.Password, Role: role, Email: a.Email}); err != nil {
				return nil, err
			}
			s.changed(as, OpUserAdd, "target", a.Name, "role", role.String())
			return userView(s.dir.Snapshot(), a.Name), nil
		}),
		OpUserList: typed(func(ctx context.Context, s *Service, as string, _ struct{}) (any, error) {
			snap, actor, err := s.may(as, acl.UserList)
			if err != nil {
				return nil, err
			}
			out := []UserView{}
			for _, u := range snap.Users() {
				v := userView(snap, u.Name)
				// Memberships show only for numbers the actor may see.
				v.Numbers = slices.DeleteFunc(v.Numbers, func(e string) bool {
					return acl.Decide(actor, acl.NumberView, acl.Target{NumberRole: snap.MemberRole(e, actor.Name)}) != nil
				})
				out = append(out, v)
			}
			return out, nil
		}),
		OpUserRemove: typed(func(ctx context.Context, s *Service, as string, a UserArgs) (any, error) {
			if err := s.dir.RemoveUser(as, a.Name); err != nil {
				return nil, err
			}
			s.changed(as, OpUserRemove, "target", a.Name)
			return Done{"removed user " + a.Name}, nil
		}),
		OpUserSetRole: typed(func(ctx context.Context, s *Service, as string, a UserArgs) (any, error) {
			r, err := acl.ParseRole(a.Role)
			if err != nil {
				return nil, err
			}
			if err := s.dir.SetUserRole(as, a.Name, r); err != nil {
				return nil, err
			}
			s.changed(as, OpUserSetRole, "target", a.Name, "role", r.String())
			return userView(s.dir.Snapshot(), a.Name), nil
		}),
		OpUserSetPassword: typed(func(ctx context.Context, s *Service, as string, a UserArgs) (any, error) {
			if err := s.dir.SetPassword(as, a.Name, a.Password); err != nil {
				return nil, err
			}
			s.changed(as, OpUserSetPassword, "target", a.Name)
			return Done{"changed the password of " + a.Name}, nil
		}),
		OpUserSetDefault: typed(func(ctx context.Context, s *Service, as string, a TrunkOfArgs) (any, error) {
			if err := s.dir.SetDefaultNumber(as, a.User, a.Number); err != nil {
				return nil, err
			}
			e, _ := acl.NormalizeE164(a.Number)
			s.changed(as, OpUserSetDefault, "target", a.User, "number", e)
			return Done{a.User + " now calls and texts out as " + e}, nil
		}),
	}
}

// roleOrMember reads a --role flag; left out, it is member.
func roleOrMember(name string) (acl.Role, error) {
	if name == "" {
		return acl.RoleMember, nil
	}
	return acl.ParseRole(name)
}

func userView(snap *acl.Snapshot, name string) UserView {
	u, _ := snap.User(name)
	nums := snap.NumbersOf(name)
	if nums == nil {
		nums = []string{}
	}
	return UserView{Name: u.Name, Email: u.Email, Role: u.Role.String(), Numbers: nums}
}

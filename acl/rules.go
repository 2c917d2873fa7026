package acl

import "fmt"

// Actor is who acts, as the directory knows them at the moment of acting.
type Actor struct {
	Name     string // user name; empty for the operator
	Operator bool   // the local operator (CLI without --as): every right
	Role     Role   // workspace role
}

// Operator is the local operator, who may do everything.
var Operator = Actor{Operator: true}

// Action is something an actor may try.
type Action uint8

// Actions. Workspace actions come first, then per-number actions.
const (
	UserAdd         Action = iota // Target.Role: the new user's role
	UserRemove                    // Target.Role: the user's role
	UserSetRole                   // Target.Role: current role; Target.NewRole: wanted
	UserSetPassword               // Target.Role: the user's role; Target.Self when own
	UserList
	PlanShow
	PlanSet
	NumberAdd
	NumberRemove
	TrunkAdd
	TrunkRemove
	TrunkList

	MemberAdd      // Target.NumberRole: actor's role on the number; Target.NewRole
	MemberRemove   // Target.NumberRole
	MemberSetRole  // Target.NumberRole; Target.NewRole
	NumberSettings // Target.NumberRole: name, call flow, greeting, trunk
	NumberView     // Target.NumberRole: see the number and its members
	NumberUse      // Target.NumberRole: calls, voicemail, messages, comments, history
)

var actionNames = [...]string{
	UserAdd: "add users", UserRemove: "remove users", UserSetRole: "change workspace roles",
	UserSetPassword: "change passwords", UserList: "list users", PlanShow: "see the plan",
	PlanSet: "change the plan", NumberAdd: "add numbers", NumberRemove: "remove numbers",
	TrunkAdd: "add trunks", TrunkRemove: "remove trunks", TrunkList: "list trunks",
	MemberAdd: "add users to a number", MemberRemove: "remove users from a number",
	MemberSetRole: "change number roles", NumberSettings: "change a number's settings",
	NumberView: "see a number", NumberUse: "use a number",
}

// String names the action for messages.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action %d", a)
}

// Target describes what an action touches, as far as the rules care.
type Target struct {
	Role       Role // workspace role of the user acted on (UserRemove, UserSetRole, UserSetPassword, UserAdd)
	NewRole    Role // role to give (UserAdd uses Role; UserSetRole, MemberAdd, MemberSetRole use NewRole)
	NumberRole Role // the actor's own role on the number (per-number actions)
	Self       bool // the actor acts on themselves (UserSetPassword)
}

// ManagingRole is the actor's role for managing a number: the operator and
// workspace owners and admins count as its owner, whatever their number role.
func ManagingRole(a Actor, numberRole Role) Role {
	if a.Operator || a.Role == RoleOwner || a.Role == RoleAdmin {
		return RoleOwner
	}
	return numberRole
}

// Decide says whether the actor may take the action on the target: nil, or
// an error wrapping ErrForbidden that says who may.
func Decide(a Actor, act Action, t Target) error {
	if a.Operator {
		return nil
	}
	if act <= UserSetPassword && act != UserSetPassword && a.Role != RoleOwner && a.Role != RoleAdmin {
		return refuse(a, act, "only workspace owners and admins can "+act.String())
	}
	switch act {
	case UserAdd:
		if !canManageUser(a.Role, t.Role) {
			return refuse(a, act, "only a workspace owner can create an owner; admins add admins and members")
		}
	case UserRemove:
		if !canManageUser(a.Role, t.Role) {
			return refuse(a, act, "only a workspace owner can remove an owner; admins remove admins and members")
		}
	case UserSetRole:
		if !canManageUser(a.Role, t.Role) || !canManageUser(a.Role, t.NewRole) {
			return refuse(a, act, "only a workspace owner can promote to or demote an owner; admins change admins and members")
		}
	case UserSetPassword:
		if !t.Self && !canManageUser(a.Role, t.Role) {
			return refuse(a, act, "users change their own password; owners change anyone's, admins those of admins and members")
		}
	case UserList, PlanShow:
		// Every user of the workspace sees the team and the plan.
	case PlanSet:
		if a.Role != RoleOwner {
			return refuse(a, act, "only a workspace owner can change the plan")
		}
	case NumberAdd, NumberRemove, TrunkAdd, TrunkRemove, TrunkList:
		if a.Role != RoleOwner && a.Role != RoleAdmin {
			return refuse(a, act, "only workspace owners and admins can "+act.String())
		}
	case MemberAdd:
		r := ManagingRole(a, t.NumberRole)
		switch {
		case r != RoleOwner && r != RoleAdmin:
			return refuse(a, act, "only the number's owners and admins can add users to it")
		case t.NewRole == RoleOwner && r != RoleOwner:
			return refuse(a, act, "only the number's owners can add an owner; admins add admins and members")
		}
	case MemberRemove:
		if ManagingRole(a, t.NumberRole) != RoleOwner {
			return refuse(a, act, "only the number's owners can remove users from it")
		}
	case MemberSetRole:
		if ManagingRole(a, t.NumberRole) != RoleOwner {
			return refuse(a, act, "only the number's owners can change number roles")
		}
	case NumberSettings:
		if r := ManagingRole(a, t.NumberRole); r != RoleOwner && r != RoleAdmin {
			return refuse(a, act, "only the number's owners and admins can change its settings")
		}
	case NumberView:
		if ManagingRole(a, t.NumberRole) == RoleNone {
			return refuse(a, act, "only the number's members and workspace owners and admins can see it")
		}
	case NumberUse:
		if t.NumberRole == RoleNone {
			if a.Role == RoleOwner || a.Role == RoleAdmin {
				return refuse(a, act, "you manage this number but are not a member; add yourself with \"partyline number member add NUMBER "+a.Name+"\" to see its conversations")
			}
			return refuse(a, act, "only the number's members can use it")
		}
	default:
		return refuse(a, act, "unknown action")
	}
	return nil
}

// canManageUser: owners manage anyone; admins manage admins and members.
func canManageUser(actor, target Role) bool {
	switch actor {
	case RoleOwner:
		return true
	case RoleAdmin:
		return target != RoleOwner
	}
	return false
}

func refuse(a Actor, act Action, why string) error {
	return fmt.Errorf("%w: %s (workspace %s) may not %s: %s", ErrForbidden, a.Name, a.Role, act, why)
}

package acl

import "errors"

// Sentinel errors for the outcomes callers branch on. Returned errors wrap
// one of them with a message that says what to do next.
var (
	// ErrForbidden: the actor's roles do not allow the action.
	ErrForbidden = errors.New("refused")
	// ErrPlanLimit: the workspace plan does not allow it.
	ErrPlanLimit = errors.New("plan limit")
	// ErrInvalid: the input is malformed.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: the named user, number or trunk does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the named user, number or trunk exists already.
	ErrExists = errors.New("already exists")
	// ErrLastOwner: the change would leave a number or the workspace without an owner.
	ErrLastOwner = errors.New("last owner")
)

package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/partyline/partyline/acl"
)

// opFunc runs one operation for the acting user as ("" = operator).
type opFunc func(ctx context.Context, s *Service, as string, args json.RawMessage) (any, error)

// operations lists every operation the service answers, by group; each
// group is one file (users.go, plan.go, numbers.go, flow.go, trunks.go,
// registrations.go, calls.go, contacts.go, voicemail.go, inbox.go).
func operations() map[string]opFunc {
	all := map[string]opFunc{}
	for _, group := range []map[string]opFunc{
		userOps(), planOps(), numberOps(), flowOps(), trunkOps(),
		registrationOps(), callOps(), contactOps(), voicemailOps(), inboxOps(), tokenOps(), webhookOps(),
	} {
		for name, op := range group {
			if _, dup := all[name]; dup {
				panic("admin: operation " + name + " is in two groups")
			}
			all[name] = op
		}
	}
	return all
}

// Done answers an operation that removes something.
type Done struct {
	Done string `json:"done"`
}

// typed decodes the arguments strictly: a field the operation does not
// take or a value of the wrong type is refused (acl.ErrInvalid), naming
// the field.
func typed[A any](f func(ctx context.Context, s *Service, as string, a A) (any, error)) opFunc {
	return func(ctx context.Context, s *Service, as string, raw json.RawMessage) (any, error) {
		var a A
		if len(raw) > 0 {
			if err := decodeStrict(raw, &a); err != nil {
				return nil, err
			}
		}
		return f(ctx, s, as, a)
	}
}

// decodeStrict decodes one JSON value into dst, refusing unknown fields.
func decodeStrict(raw []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		// A newer CLI than the server, most likely.
		return fmt.Errorf("%w: bad arguments: %s: this partyline server may be older than the CLI", acl.ErrInvalid, msg)
	}
	return fmt.Errorf("%w: bad arguments: %s", acl.ErrInvalid, msg)
}

// changed logs a committed change for operators; never a password.
func (s *Service) changed(as, op string, kv ...any) {
	actor := as
	if actor == "" {
		actor = "operator"
	}
	s.log.Info("admin", append([]any{"op", op, "user", actor}, kv...)...)
}

// may resolves the acting user and checks a workspace-level action.
func (s *Service) may(as string, act acl.Action) (*acl.Snapshot, acl.Actor, error) {
	snap := s.dir.Snapshot()
	actor, err := snap.Actor(as)
	if err != nil {
		return snap, actor, err
	}
	return snap, actor, acl.Decide(actor, act, acl.Target{})
}

// numberFor resolves the acting user and the number (any spelling) and
// checks that the actor may take act on it.
func (s *Service) numberFor(as, number string, act acl.Action) (*acl.Snapshot, acl.Actor, acl.Number, error) {
	snap := s.dir.Snapshot()
	actor, err := snap.Actor(as)
	if err != nil {
		return snap, actor, acl.Number{}, err
	}
	e, err := acl.NormalizeE164(number)
	if err != nil {
		return snap, actor, acl.Number{}, err
	}
	n, ok := snap.Number(e)
	if !ok {
		return snap, actor, n, fmt.Errorf("%w: unknown number %s: see \"partyline number list\"", acl.ErrNotFound, e)
	}
	if err := acl.Decide(actor, act, acl.Target{NumberRole: n.Role(actor.Name)}); err != nil {
		return snap, actor, n, err
	}
	return snap, actor, n, nil
}

// usableNumbers are the numbers whose conversations the actor may see:
// the one asked for (refused when not a member), or all of theirs.
func (s *Service) usableNumbers(as, number string) ([]string, error) {
	snap := s.dir.Snapshot()
	actor, err := snap.Actor(as)
	if err != nil {
		return nil, err
	}
	if number != "" {
		_, _, n, err := s.numberFor(as, number, acl.NumberUse)
		if err != nil {
			return nil, err
		}
		return []string{n.E164}, nil
	}
	var out []string
	for _, n := range snap.Numbers() {
		if acl.Decide(actor, acl.NumberUse, acl.Target{NumberRole: n.Role(actor.Name)}) == nil {
			out = append(out, n.E164)
		}
	}
	return out, nil
}

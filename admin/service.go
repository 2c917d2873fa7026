package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/config"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
	"github.com/partyline/partyline/webhook"
)

// Service runs the operations behind the CLI on the workspace's stores
// and answers them on the admin socket.
type Service struct {
	cfg   config.Config
	dir   *acl.Directory
	loc   *location.Store
	box   *inbox.Store
	hooks *webhook.Store
	log   *slog.Logger
	ops   map[string]opFunc

	// OnVoicemailChange, when set, is told the number whose voicemail
	// changed (heard, deleted) so phones' message lamps follow.
	OnVoicemailChange func(number string)
	// SendText, when set (by the running server), sends a member's text
	// as the shared number through its trunk.
	SendText func(number, member, to, text string) (inbox.Message, error)
	// Typing, when set, names who is typing in a conversation now.
	Typing func(number, party string) []inbox.Typist
}

// Stores are the workspace's stores on its one bbolt file. The caller
// (cmd/partyline, the composition root) opens them and closes the file; the
// service works on them and owns none.
type Stores struct {
	Directory *acl.Directory
	Location  *location.Store
	Inbox     *inbox.Store
	Webhooks  *webhook.Store // nil: the webhook operations say they are not available
}

// New is the service over st for the data directory of cfg, whose admin
// socket Listen opens; log may be nil.
func New(cfg config.Config, st Stores, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg.WithDefaults(), dir: st.Directory, loc: st.Location, box: st.Inbox, hooks: st.Webhooks, log: log, ops: operations()}
}

// Request is one CLI command.
type Request struct {
	As   string          `json:"as,omitempty"` // acting user; empty: the local operator
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response carries a result or an error.
type Response struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Error is a refused or failed operation as the CLI shows it.
type Error struct {
	Kind    string `json:"kind"` // forbidden, plan_limit, invalid, not_found, exists, last_owner, needs_server, not_delivered, internal
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

func toError(err error) *Error {
	kinds := []struct {
		err  error
		kind string
	}{
		{acl.ErrForbidden, "forbidden"}, {acl.ErrPlanLimit, "plan_limit"}, {acl.ErrInvalid, "invalid"},
		{acl.ErrNotFound, "not_found"}, {acl.ErrExists, "exists"}, {acl.ErrLastOwner, "last_owner"},
		{ErrNeedsServer, "needs_server"}, {ErrNotDelivered, "not_delivered"},
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return &Error{Kind: k.kind, Message: err.Error()}
		}
	}
	return &Error{Kind: "internal", Message: err.Error()}
}

// Handle runs one request. It never panics on bad input.
func (s *Service) Handle(ctx context.Context, req Request) (resp Response) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("admin operation panicked", "op", req.Op, "panic", fmt.Sprint(p))
			resp = Response{Error: &Error{Kind: "internal", Message: "internal error: see the server log"}}
		}
	}()
	op, ok := s.ops[req.Op]
	if !ok {
		return Response{Error: &Error{Kind: "invalid", Message: fmt.Sprintf("unknown operation %q: this partyline server may be older than the CLI", req.Op)}}
	}
	result, err := op(ctx, s, req.As, req.Args)
	if err != nil {
		return Response{Error: toError(err)}
	}
	b, err := json.Marshal(result)
	if err != nil {
		return Response{Error: toError(err)}
	}
	return Response{Result: b}
}

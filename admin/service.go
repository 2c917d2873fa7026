package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/config"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
)

// ErrBusy: another process holds the data directory.
var ErrBusy = errors.New("data directory in use")

// Service owns the workspace's bbolt file and the directory in it.
type Service struct {
	cfg config.Config
	db  *bolt.DB
	dir *acl.Directory
	loc *location.Store
	box *inbox.Store
	log *slog.Logger
	ops map[string]opFunc

	// OnVoicemailChange, when set, is told the number whose voicemail
	// changed (heard, deleted) so phones' message lamps follow.
	OnVoicemailChange func(number string)
	// SendText, when set (by the running server), sends a member's text
	// as the shared number through its trunk.
	SendText func(number, member, to, text string) (inbox.Message, error)
	// Typing, when set, names who is typing in a conversation now.
	Typing func(number, party string) []inbox.Typist
}

// Open opens (creating when needed) the data directory of cfg and takes the
// bbolt file's lock, waiting at most cfg.LockTimeout. A data directory that
// another user owns or that group or others may write to is refused
// (ErrUnsafe): whoever can write it can plant the admin socket.
func Open(cfg config.Config, log *slog.Logger) (*Service, error) {
	return open(cfg, log, os.Geteuid())
}

// open is Open for the user uid.
func open(cfg config.Config, log *slog.Logger, uid int) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	if err := checkDataDir(cfg.DataDir, uid); err != nil {
		return nil, err
	}
	db, err := bolt.Open(cfg.DBPath(), 0o600, &bolt.Options{Timeout: cfg.LockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is held by another partyline process (a server starting or stopping?): try again in a moment", ErrBusy, cfg.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", cfg.DBPath(), err)
	}
	dir, err := acl.Open(db, acl.Options{Realm: cfg.Realm})
	if err != nil {
		db.Close()
		return nil, err
	}
	loc, err := location.Open(db, location.Options{})
	if err != nil {
		db.Close()
		return nil, err
	}
	box, err := inbox.Open(db, nil)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Service{cfg: cfg, db: db, dir: dir, loc: loc, box: box, log: log, ops: operations()}, nil
}

// Directory is the live directory the server routes with.
func (s *Service) Directory() *acl.Directory { return s.dir }

// Location is the registrar's location store.
func (s *Service) Location() *location.Store { return s.loc }

// Inbox is the shared inbox store.
func (s *Service) Inbox() *inbox.Store { return s.box }

// DB is the workspace's bbolt file, for the other stores that share it.
func (s *Service) DB() *bolt.DB { return s.db }

// Config is the configuration the service was opened with, defaults filled.
func (s *Service) Config() config.Config { return s.cfg }

// Close releases the data file.
func (s *Service) Close() error { return s.db.Close() }

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
	Kind    string `json:"kind"` // forbidden, plan_limit, invalid, not_found, exists, last_owner, busy, internal
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
		{ErrBusy, "busy"}, {ErrNeedsServer, "needs_server"}, {ErrNotDelivered, "not_delivered"},
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

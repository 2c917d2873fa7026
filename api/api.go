package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/guard"
)

// Config is what the HTTP surface runs on. Zero durations and counts take
// the default in their comment.
type Config struct {
	// Service runs the operations (required): the CLI's, with its rules.
	Service *admin.Service
	// Directory knows the users, their password hashes and tokens (required).
	Directory *acl.Directory
	// DB is the workspace's bbolt file; sessions live in its own bucket
	// (required).
	DB *bolt.DB
	// Log gets security events and internal errors; nil discards.
	Log *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time

	// SessionIdle ends a session this long after its last request (12 h).
	SessionIdle time.Duration
	// SessionMax ends a session this long after the login whatever (7 days).
	SessionMax time.Duration
	// MaxBody bounds a request body (1 MiB); a longer one gets 413.
	MaxBody int64
	// MaxLogins bounds the password checks running at once (4): each
	// takes 19 MiB and tens of milliseconds; more wait their turn.
	MaxLogins int

	// BanThreshold failed logins of one user from one source IP within
	// BanWindow are tolerated; one more bans that user from that IP for
	// BanFor. More than BanSourceThreshold for any users from one IP ban the
	// IP. Defaults are SIP's: 5, 4 x BanThreshold, 1 minute, 5 minutes.
	BanThreshold       int
	BanSourceThreshold int
	BanWindow          time.Duration
	BanFor             time.Duration
	// Bans, when set, is the ban table shared with the SIP server (the
	// fields above are then its own); nil: one of the API's.
	Bans *guard.Bans
}

// Server is the HTTP handler of the API. It starts no goroutines.
type Server struct {
	cfg      Config
	svc      *admin.Service
	dir      *acl.Directory
	log      *slog.Logger
	now      func() time.Time
	sessions *sessions
	bans     *bans
	logins   chan struct{} // a slot per password check running
	cop      *http.CrossOriginProtection
	mux      *http.ServeMux
	handler  http.Handler
}

// New builds the API on cfg, creating the sessions bucket when needed.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil || cfg.Directory == nil || cfg.DB == nil {
		return nil, errors.New("api: Config needs Service, Directory and DB")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.SessionIdle, 12*time.Hour)
	def(&cfg.SessionMax, 7*24*time.Hour)
	def(&cfg.BanWindow, time.Minute)
	def(&cfg.BanFor, 5*time.Minute)
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.MaxLogins <= 0 {
		cfg.MaxLogins = 4
	}
	if cfg.BanThreshold <= 0 {
		cfg.BanThreshold = 5
	}
	if cfg.BanSourceThreshold <= 0 {
		cfg.BanSourceThreshold = 4 * cfg.BanThreshold
	}
	st, err := openSessions(cfg.DB, cfg.SessionIdle, cfg.SessionMax)
	if err != nil {
		return nil, fmt.Errorf("api: sessions: %w", err)
	}
	s := &Server{
		cfg: cfg, svc: cfg.Service, dir: cfg.Directory, log: cfg.Log, now: cfg.Now, sessions: st,
		bans:   newBans(cfg.Bans, cfg.BanThreshold, cfg.BanSourceThreshold, cfg.BanWindow, cfg.BanFor, cfg.Log),
		logins: make(chan struct{}, cfg.MaxLogins),
		cop:    http.NewCrossOriginProtection(),
		mux:    http.NewServeMux(),
	}
	s.routes()
	s.handler = s.recoverer(s.headers(s.crossOrigin(s.limitBody(s.fallback(s.mux)))))
	return s, nil
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

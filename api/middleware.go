package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// sessionCookie names the session cookie.
const sessionCookie = "partyline_session"

// principal is who a request acts as.
type principal struct {
	user      string
	sessionID string // the session's id; "" for a token
	tokenID   string // the token's id; "" for a session
}

type principalKey struct{}

// who is the request's user; only private handlers call it.
func who(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// recoverer answers a panic with 500 and logs it; the server goes on.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("http handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				writeError(w, http.StatusInternalServerError, "internal error: see the server log")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// headers sets what every answer carries: nothing is cached, nothing is
// sniffed, nothing is framed.
func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// crossOrigin refuses a state-changing request (anything but GET, HEAD,
// OPTIONS) that a browser says comes from another origin
// (Sec-Fetch-Site, or Origin against Host): a form or fetch on another
// site cannot use the user's cookie. Scripts with a token send neither
// header and pass.
func (s *Server) crossOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.cop.Check(r); err != nil {
			writeError(w, http.StatusForbidden, "refused: cross-origin request: state changes are accepted only from partyline's own pages or from scripts with a token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody bounds every request body to MaxBody.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBody {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", s.cfg.MaxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		next.ServeHTTP(w, r)
	})
}

// fallback answers, in JSON, what the mux has no route for (404) or no
// route for with this method (405, with Allow).
func (s *Server) fallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeError(w, rec.code, fmt.Sprintf("method %s not allowed here: use %s", r.Method, rec.header.Get("Allow")))
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			mux.ServeHTTP(w, r) // a cleaned path: let the mux redirect
		default:
			writeError(w, http.StatusNotFound, "no such resource: "+r.URL.Path)
		}
	})
}

// statusRecorder keeps what the mux's own 404 or 405 handler writes.
type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

// private lets a request through only with a live session or a valid
// token, and tells the handler whose.
func (s *Server) private(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, status, msg := s.authenticate(w, r)
		if status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="partyline"`)
			}
			writeError(w, status, msg)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// authenticate finds who the request acts as: the token of an
// Authorization header when there is one (the cookie is then not looked
// at), else the session cookie. A session whose user is gone, or whose
// password or workspace role changed since the login, ends here.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (principal, int, string) {
	now := s.now()
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, secret, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "Bearer") || secret == "" {
			return principal{}, http.StatusUnauthorized, "unauthorized: use Authorization: Bearer TOKEN (\"partyline token create\")"
		}
		ip := clientIP(r)
		if _, banned := s.bans.banned(ip, "", now); banned {
			return principal{}, http.StatusTooManyRequests, "too many failed logins from this address: try again later"
		}
		user, tok, ok := s.dir.Snapshot().TokenUser(strings.TrimSpace(secret))
		if !ok {
			s.bans.fail(ip, "", now)
			return principal{}, http.StatusUnauthorized, "unauthorized: unknown or revoked token"
		}
		return principal{user: user, tokenID: tok.ID}, 0, ""
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return principal{}, http.StatusUnauthorized, "unauthorized: log in (POST /api/v1/session) or send a token"
	}
	sess, err := s.sessions.get(c.Value, now)
	if err != nil {
		if err != errNoSession {
			s.log.Error("reading a session", "err", err)
		}
		expireCookie(w, r)
		return principal{}, http.StatusUnauthorized, "unauthorized: the session has ended: log in again"
	}
	u, ok := s.dir.Snapshot().User(sess.User)
	if !ok || u.Role.String() != sess.Role || u.CredentialStamp() != sess.Stamp {
		s.sessions.delete(c.Value)
		expireCookie(w, r)
		return principal{}, http.StatusUnauthorized, "unauthorized: the session has ended (the password or role changed): log in again"
	}
	return principal{user: sess.User, sessionID: c.Value}, 0, ""
}

// clientIP is the request's source address (no proxy header is trusted).
func clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func setSessionCookie(w http.ResponseWriter, r *http.Request, id string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

func expireCookie(w http.ResponseWriter, r *http.Request) {
	setSessionCookie(w, r, "", -1)
}

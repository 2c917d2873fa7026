package api

import (
	"net/http"
	"strconv"
	"time"
)

// sessionCreate logs a user in: POST /api/v1/session {"user","password"}.
// A wrong password and an unknown user get the same answer, after the
// same time; each counts toward the source's and the user's ban.
func (s *Server) sessionCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User     *string `json:"user"`
		Password *string `json:"password"`
	}
	if !s.decode(w, r, &body) || missing(w, "user", body.User, "password", body.Password) {
		return
	}
	ip, user := clientIP(r), *body.User
	if retry, banned := s.bans.banned(ip, user, s.now()); banned {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
		writeError(w, http.StatusTooManyRequests, "too many failed logins: try again later")
		return
	}
	select {
	case s.logins <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	ok := s.dir.VerifyPassword(user, *body.Password)
	<-s.logins
	now := s.now()
	if !ok {
		s.bans.fail(ip, user, now)
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	u, found := s.dir.Snapshot().User(user)
	if !found { // removed this instant
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	id, err := s.sessions.create(session{User: u.Name, Role: u.Role.String(), Stamp: u.CredentialStamp()}, now)
	if err != nil {
		s.log.Error("saving a session", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error: see the server log")
		return
	}
	setSessionCookie(w, r, id, int(s.cfg.SessionMax/time.Second))
	writeJSON(w, http.StatusOK, struct {
		User    string    `json:"user"`
		Role    string    `json:"role"`
		Expires time.Time `json:"expires"`
	}{u.Name, u.Role.String(), now.Add(s.cfg.SessionMax).UTC()})
}

package api

import "net/http"

// sessionDelete logs out: DELETE /api/v1/session ends the cookie's session
// (if any: logging out twice is no error) and clears the cookie. A token is
// revoked with "partyline token revoke", not here.
func (s *Server) sessionDelete(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		if err := s.sessions.delete(c.Value); err != nil {
			s.log.Error("ending a session", "err", err)
			writeError(w, http.StatusInternalServerError, "internal error: see the server log")
			return
		}
	}
	expireCookie(w, r)
	writeJSON(w, http.StatusOK, map[string]string{"done": "logged out"})
}

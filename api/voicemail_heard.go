package api

import (
	"net/http"

	"github.com/partyline/partyline/admin"
)

// voicemailHeard answers POST /api/v1/voicemail/{id}/heard: marks the
// message heard by the user (the phones' message lamps follow).
func (s *Server) voicemailHeard(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, http.StatusOK, admin.OpVoicemailHeard, admin.VoicemailArgs{ID: r.PathValue("id")})
}

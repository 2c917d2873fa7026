package api

import (
	"net/http"

	"github.com/partyline/partyline/admin"
)

// voicemailList answers GET /api/v1/voicemail?number=: "voicemail list".
func (s *Server) voicemailList(w http.ResponseWriter, r *http.Request) {
	number := r.URL.Query().Get("number")
	s.callNumber(w, r, number, admin.OpVoicemailList, admin.VoicemailArgs{Number: number})
}

package api

import (
	"net/http"

	"github.com/partyline/partyline/admin"
)

// commentCreate answers POST /api/v1/items/{id}/comments {"text"}: "inbox
// comment", an internal comment on a call, voicemail, text or comment (a
// reply).
func (s *Server) commentCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Text *string `json:"text"`
	}
	if !s.decode(w, r, &body) || missing(w, "text", body.Text) {
		return
	}
	s.call(w, r, http.StatusCreated, admin.OpInboxComment, admin.InboxArgs{ID: r.PathValue("id"), Text: *body.Text})
}

package api

import (
	"net/http"

	"github.com/partyline/partyline/admin"
)

// conversationState answers POST /api/v1/conversations/{id}/state
// {"state": "open"|"unread"|"done"}: "inbox open|unread|done".
func (s *Server) conversationState(w http.ResponseWriter, r *http.Request) {
	var body struct {
		State *string `json:"state"`
	}
	if !s.decode(w, r, &body) || missing(w, "state", body.State) {
		return
	}
	s.call(w, r, http.StatusOK, admin.OpInboxState, admin.InboxArgs{ID: r.PathValue("id"), State: *body.State})
}

package api

import (
	"net/http"

	"github.com/partyline/partyline/admin"
)

// conversationShow answers GET /api/v1/conversations/{id}: "inbox show",
// the timeline, who opened it and who is typing; it records that the
// user opened it.
func (s *Server) conversationShow(w http.ResponseWriter, r *http.Request) {
	a := admin.InboxArgs{ID: r.PathValue("id")}
	if !queryInt(w, r, "limit", &a.Limit) {
		return
	}
	s.call(w, r, http.StatusOK, admin.OpInboxShow, a)
}

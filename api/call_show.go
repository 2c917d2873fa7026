package api

import (
	"net/http"

	"github.com/partyline/partyline/admin"
)

// callShow answers GET /api/v1/calls/{id}: "calls show", who rang, on
// which phone, what happened.
func (s *Server) callShow(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, http.StatusOK, admin.OpCallShow, admin.CallArgs{ID: r.PathValue("id")})
}

package api

import (
	"net/http"

	"github.com/partyline/partyline/admin"
)

// numbersList answers GET /api/v1/numbers: "number list", the numbers
// the user belongs to (a workspace owner or admin: all), with members.
func (s *Server) numbersList(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, http.StatusOK, admin.OpNumberList, struct{}{})
}

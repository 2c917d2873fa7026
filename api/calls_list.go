package api

import (
	"net/http"

	"github.com/partyline/partyline/admin"
)

// callsList answers GET /api/v1/calls?number=&limit=: "calls", newest first.
func (s *Server) callsList(w http.ResponseWriter, r *http.Request) {
	a := admin.CallArgs{Number: r.URL.Query().Get("number")}
	if !queryInt(w, r, "limit", &a.Limit) {
		return
	}
	s.callNumber(w, r, a.Number, admin.OpCalls, a)
}

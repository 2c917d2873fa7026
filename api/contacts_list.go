package api

import (
	"net/http"

	"github.com/partyline/partyline/admin"
)

// contactsList answers GET /api/v1/contacts: the workspace's address book.
func (s *Server) contactsList(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, http.StatusOK, admin.OpContactList, struct{}{})
}

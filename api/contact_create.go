package api

import (
	"encoding/json"
	"net/http"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/inbox"
)

// contactCreate answers POST /api/v1/contacts {"name","phones",
// "company","email","note"}: "contact add"; 201 with the contact.
func (s *Server) contactCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name    *string  `json:"name"`
		Phones  []string `json:"phones"`
		Company string   `json:"company"`
		Email   string   `json:"email"`
		Note    string   `json:"note"`
	}
	if !s.decode(w, r, &body) || missing(w, "name", body.Name) {
		return
	}
	c := inbox.Contact{Name: *body.Name, Phones: body.Phones, Company: body.Company, Email: body.Email, Note: body.Note}
	var added []json.RawMessage
	if !s.callInto(w, r, admin.OpContactAdd, admin.ContactArgs{Contacts: []inbox.Contact{c}}, &added) {
		return
	}
	if len(added) != 1 {
		writeError(w, http.StatusInternalServerError, "internal error: see the server log")
		return
	}
	writeRaw(w, http.StatusCreated, added[0])
}

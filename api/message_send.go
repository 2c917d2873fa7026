package api

import (
	"net/http"

	"github.com/partyline/partyline/admin"
)

// messageSend answers POST /api/v1/messages {"number","to","text"}:
// "message send", a text to an outside party as the shared number,
// through the running server's trunk. 502 when the trunk refused it or
// never answered (it is kept in the conversation as failed); 503 when no
// SIP server runs in this process.
func (s *Server) messageSend(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Number *string `json:"number"`
		To     *string `json:"to"`
		Text   *string `json:"text"`
	}
	if !s.decode(w, r, &body) || missing(w, "number", body.Number, "to", body.To, "text", body.Text) {
		return
	}
	a := admin.MessageArgs{Number: *body.Number, To: *body.To, Text: *body.Text}
	res, e := s.run(r.Context(), who(r).user, admin.OpMessageSend, a)
	if e != nil {
		s.failNumber(w, r, a.Number, e)
		return
	}
	writeRaw(w, http.StatusCreated, res)
}

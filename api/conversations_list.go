package api

import (
	"encoding/json"
	"net/http"

	"github.com/partyline/partyline/admin"
)

// conversationsList answers GET /api/v1/conversations?number=&state=&limit=&before=:
// "inbox list", newest item first. before pages on: give the last_item of
// the last conversation seen to get those whose newest item is older.
func (s *Server) conversationsList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a := admin.InboxArgs{Number: q.Get("number"), State: q.Get("state")}
	if !queryInt(w, r, "limit", &a.Limit) {
		return
	}
	before := q.Get("before")
	if before == "" {
		s.callNumber(w, r, a.Number, admin.OpInboxList, a)
		return
	}
	// The inbox has no cursor yet: read the newest 10,000 and skip to
	// before (deeper pages need one in inbox.Store.Conversations).
	limit := a.Limit
	if limit == 0 {
		limit = 50
	}
	if limit < 0 || limit > 10000 {
		a.Limit = limit // the operation refuses it in its words
	} else {
		a.Limit = 10000
	}
	res, e := s.run(r.Context(), who(r).user, admin.OpInboxList, a)
	if e != nil {
		s.failNumber(w, r, a.Number, e)
		return
	}
	var all []json.RawMessage
	var keys []struct {
		LastItem string `json:"last_item"`
	}
	if json.Unmarshal(res, &all) != nil || json.Unmarshal(res, &keys) != nil {
		writeError(w, http.StatusInternalServerError, "internal error: see the server log")
		return
	}
	out := []json.RawMessage{}
	for i, c := range all {
		if keys[i].LastItem < before && len(out) < limit {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/admin"
)

// errorBody is every error's answer.
type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal error: see the server log")
		return
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte("\n"))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// statusOf maps an operation's refusal to its HTTP status.
func statusOf(e *admin.Error) int {
	switch e.Kind {
	case "forbidden":
		return http.StatusForbidden
	case "not_found":
		return http.StatusNotFound
	case "invalid":
		return http.StatusUnprocessableEntity
	case "exists", "last_owner", "plan_limit":
		// The workspace as it is now refuses it; a change to it (another
		// owner, a bigger plan, a removed member) lets it through.
		return http.StatusConflict
	case "needs_server":
		return http.StatusServiceUnavailable
	case "not_delivered":
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// run runs an admin operation as the request's user and returns its JSON
// result, or the refusal.
func (s *Server) run(ctx context.Context, user, op string, args any) (json.RawMessage, *admin.Error) {
	if user == "" {
		// "" is the local operator, who may do everything: never over HTTP.
		panic("api: an operation without a user")
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, &admin.Error{Kind: "internal", Message: err.Error()}
	}
	resp := s.svc.Handle(ctx, admin.Request{As: user, Op: op, Args: raw})
	if resp.Error != nil {
		return nil, resp.Error
	}
	return resp.Result, nil
}

// fail answers a refused operation with its status and the CLI's text;
// an internal error's text stays in the log.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, e *admin.Error) {
	status := statusOf(e)
	msg := e.Message
	if status == http.StatusInternalServerError {
		s.log.Error("api operation failed", "method", r.Method, "path", r.URL.Path, "user", who(r).user, "err", e.Message)
		msg = "internal error: see the server log"
	}
	writeError(w, status, msg)
}

// call runs op as the request's user and answers its result with status.
func (s *Server) call(w http.ResponseWriter, r *http.Request, status int, op string, args any) {
	res, e := s.run(r.Context(), who(r).user, op, args)
	if e != nil {
		s.fail(w, r, e)
		return
	}
	writeRaw(w, status, res)
}

// callInto runs op and decodes its result into out; false when it was
// refused (and answered).
func (s *Server) callInto(w http.ResponseWriter, r *http.Request, op string, args, out any) bool {
	res, e := s.run(r.Context(), who(r).user, op, args)
	if e != nil {
		s.fail(w, r, e)
		return false
	}
	if err := json.Unmarshal(res, out); err != nil {
		s.fail(w, r, &admin.Error{Kind: "internal", Message: err.Error()})
		return false
	}
	return true
}

// failNumber is fail for an operation on the number a request names
// (?number=): a workspace member who may not see that number is answered
// as if it did not exist, in the words the operation uses for a missing
// number, so the API does not tell which numbers exist. Workspace owners
// and admins may see every number; they keep the CLI's refusal, which
// tells them to add themselves.
func (s *Server) failNumber(w http.ResponseWriter, r *http.Request, number string, e *admin.Error) {
	if e.Kind == "forbidden" && number != "" {
		snap := s.dir.Snapshot()
		u, _ := snap.User(who(r).user)
		if u.Role == acl.RoleMember {
			if n, err := acl.NormalizeE164(number); err == nil {
				e = &admin.Error{Kind: "not_found", Message: fmt.Sprintf("%s: unknown number %s: see \"partyline number list\"", acl.ErrNotFound, n)}
			}
		}
	}
	s.fail(w, r, e)
}

// callNumber is call for an operation filtered by ?number=.
func (s *Server) callNumber(w http.ResponseWriter, r *http.Request, number, op string, args any) {
	res, e := s.run(r.Context(), who(r).user, op, args)
	if e != nil {
		s.failNumber(w, r, number, e)
		return
	}
	writeRaw(w, http.StatusOK, res)
}

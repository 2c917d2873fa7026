package api

import "net/http"

// meView is who the request acts as.
type meView struct {
	User    string         `json:"user"`
	Email   string         `json:"email,omitempty"`
	Role    string         `json:"role"`    // workspace role
	Numbers []memberNumber `json:"numbers"` // the numbers the user belongs to
	Auth    string         `json:"auth"`    // session or token
	Token   string         `json:"token,omitempty"`
}

type memberNumber struct {
	Number string `json:"number"`
	Name   string `json:"name,omitempty"`
	Role   string `json:"role"`
}

// me answers GET /api/v1/me.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	p := who(r)
	snap := s.dir.Snapshot()
	u, ok := snap.User(p.user)
	if !ok {
		writeError(w, http.StatusUnauthorized, "unauthorized: the user is gone")
		return
	}
	v := meView{User: u.Name, Email: u.Email, Role: u.Role.String(), Numbers: []memberNumber{}, Auth: "session", Token: p.tokenID}
	if p.tokenID != "" {
		v.Auth = "token"
	}
	for _, e := range snap.NumbersOf(u.Name) {
		n, _ := snap.Number(e)
		v.Numbers = append(v.Numbers, memberNumber{Number: e, Name: n.Name, Role: n.Role(u.Name).String()})
	}
	writeJSON(w, http.StatusOK, v)
}

package api

// routes lists every route of the API: public ones first, then those that
// need a session or a token (private). Each handler is one file, named
// after it.
func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("POST /api/v1/session", s.sessionCreate)
	m.HandleFunc("DELETE /api/v1/session", s.sessionDelete)

	m.HandleFunc("GET /api/v1/me", s.private(s.me))
	m.HandleFunc("GET /api/v1/numbers", s.private(s.numbersList))
	m.HandleFunc("GET /api/v1/conversations", s.private(s.conversationsList))
	m.HandleFunc("GET /api/v1/conversations/{id}", s.private(s.conversationShow))
	m.HandleFunc("POST /api/v1/conversations/{id}/state", s.private(s.conversationState))
	m.HandleFunc("POST /api/v1/items/{id}/comments", s.private(s.commentCreate))
	m.HandleFunc("POST /api/v1/messages", s.private(s.messageSend))
	m.HandleFunc("GET /api/v1/calls", s.private(s.callsList))
	m.HandleFunc("GET /api/v1/calls/{id}", s.private(s.callShow))
	m.HandleFunc("GET /api/v1/voicemail", s.private(s.voicemailList))
	m.HandleFunc("GET /api/v1/voicemail/{id}/audio", s.private(s.voicemailAudio))
	m.HandleFunc("POST /api/v1/voicemail/{id}/heard", s.private(s.voicemailHeard))
	m.HandleFunc("GET /api/v1/contacts", s.private(s.contactsList))
	m.HandleFunc("POST /api/v1/contacts", s.private(s.contactCreate))
}

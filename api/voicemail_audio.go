package api

import (
	"bytes"
	"fmt"
	"net/http"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/media"
)

// voicemailAudio answers GET /api/v1/voicemail/{id}/audio: "voicemail
// export", the message as a 16-bit 8 kHz mono WAV (ranges served, for
// audio players); it marks the message heard by the user.
func (s *Server) voicemailAudio(w http.ResponseWriter, r *http.Request) {
	var v admin.VoicemailAudio
	if !s.callInto(w, r, admin.OpVoicemailAudio, admin.VoicemailArgs{ID: r.PathValue("id")}, &v) {
		return
	}
	samples := make([]int16, len(v.PCM)/2)
	for i := range samples {
		samples[i] = int16(uint16(v.PCM[2*i]) | uint16(v.PCM[2*i+1])<<8)
	}
	var buf bytes.Buffer
	if err := media.EncodeWAV(&buf, samples); err != nil {
		s.log.Error("encoding a voicemail", "id", v.Voicemail.ID, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error: see the server log")
		return
	}
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Content-Disposition", fmt.Sprintf("inline; filename=\"voicemail-%s.wav\"", v.Voicemail.ID))
	http.ServeContent(w, r, "", v.Voicemail.ReceivedAt, bytes.NewReader(buf.Bytes()))
}

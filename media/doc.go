// Package media speaks RTP and SDP for partyline's voicemail: offer/answer,
// G.711, recording and playback, WAV in and out. The voicemail issue fills
// it in; until then it holds no code.
package media

// Package inbox is the shared inbox of partyline's numbers, stored in the
// workspace's bbolt file: call history, voicemail, messages, internal
// comments, activity and the shared address book.
//
// It imports nothing of sip, media or cmd. The call, voicemail and inbox
// issues fill it in; until then it holds no code.
package inbox

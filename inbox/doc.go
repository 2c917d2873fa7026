// Package inbox is the shared inbox of partyline's numbers, stored in the
// workspace's bbolt file: call history now; voicemail, messages, internal
// comments, activity and the shared address book as their issues land.
//
// Invariants:
//   - a call record is written whole in one transaction at each step
//     (ringing, answered, ended), so a crash loses at most the latest step;
//   - record ids are time-ordered (8 bytes big-endian nanoseconds, 8 bytes
//     sequence), so listing newest first is a reverse cursor walk;
//   - the by-number index always names an existing record: both are written
//     in the same transaction.
//
// inbox imports nothing of sip, media or cmd.
package inbox

// Package inbox is the shared inbox of partyline's numbers, stored in the
// workspace's bbolt file: conversations and their timelines, call history,
// voicemail, texts, internal comments, who opened what, and the shared
// address book.
//
// A conversation is one shared number with one outside party (Party: the
// E.164 number, or "anonymous"). Its timeline is append-only: calls,
// voicemail, texts and comments are items; openings and state changes are
// activity. Calls, voicemail and texts keep their own records (a call's is
// rewritten at each step); the timeline refers to them.
//
// Invariants:
//   - a call record is written whole in one transaction at each step
//     (ringing, answered, ended), so a crash loses at most the latest step;
//     its first write also adds it to its conversation, in that transaction;
//   - a voicemail is written with its audio, its call record and its
//     timeline entry in one transaction: whole or absent;
//   - a text is committed to disk with its timeline entry before the SIP
//     side answers 200;
//   - ids are time-ordered (8 bytes big-endian nanoseconds, 8 bytes
//     sequence, in hex), so newest first is a reverse cursor walk; a
//     timeline is keyed conversation id + event id and reads in time order;
//   - every index entry (calls and events by number, conversations by
//     number, by number and state, by party, items to their conversation)
//     is written in the same transaction as what it names;
//   - a conversation's state is open, unread (an inbound item nobody has
//     opened since) or done (archived until the next inbound item).
//
// inbox imports nothing of sip, media or cmd.
package inbox

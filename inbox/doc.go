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
// Invariants (Store.Check verifies those about what is stored: indexes,
// timelines, keys and counters; the inbox tests run it after every test
// that opens a store, sip's tests after every server they stop):
//   - a call record is written whole in one transaction at each step
//     (ringing, answered, ended), so a crash loses at most the latest step;
//     its first write also adds it to its conversation, in that transaction;
//   - a voicemail is written with its audio, its call record and its
//     timeline entry in one transaction: whole or absent;
//   - a text is committed to disk with its timeline entry before the SIP
//     side answers 200; a text received with a Key (InboundKey: Call-ID,
//     CSeq number, From tag) is stored at most once, its key written in
//     the same transaction and kept as long as the text;
//   - ids are time-ordered (8 bytes big-endian nanoseconds, 8 bytes
//     sequence, in hex), so newest first is a reverse cursor walk; a
//     timeline is keyed conversation id + event id and reads in time order;
//   - every index entry is written in the same transaction as what it
//     names, and names an existing record of that number: calls and
//     voicemail by number, conversations by party, by number and by number
//     and state (under their current last item and state, no stale entry),
//     events by number, items to their conversation, text keys to their
//     text, contacts by phone, read markers to the reader's own opening;
//     and every record is in each index it belongs to;
//   - every call (with a number), voicemail and text is an item of exactly
//     one timeline, of the conversation of its number and party, with its
//     direction; a timeline's call and text items name existing records (a
//     voicemail may be deleted since), its comments answer items of the
//     same conversation;
//   - a conversation's Items counts its timeline's items, and LastItem
//     (with its time, kind and summary), LastInbound and LastEvent are its
//     newest item, inbound item and event by id, whatever order concurrent
//     writers committed in;
//   - a conversation's state is open, unread (an inbound item nobody has
//     opened since) or done (archived until the next inbound item);
//   - every change recorded (a call's step, a voicemail, a text in or
//     out and a text out settled, a comment, a conversation created,
//     opened or changing state) is a feed event (FeedEvent), written in
//     the transaction of the change under the next number of the
//     workspace's sequence, so the numbers follow commit order, none is
//     reused, and a consumer that resumes after the last number it
//     handled misses nothing the retention (Store.FeedRetention, 7 days)
//     kept; a feed event's conversation exists, of its number, and its
//     item is an item of that conversation. Subscribe is told after each
//     such commit, never holding the writer.
//
// inbox imports nothing of sip, media or cmd.
package inbox

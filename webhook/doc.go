// Package webhook sends the shared inbox's events to the URLs workspace
// owners and admins register: each event POSTed as JSON
//
//	{"id": "42", "type": "message.received", "created_at": "...", "number": "+15551230001", "data": {...}}
//
// (data is the feed event's, inbox.MessageData and its kin) with the
// headers Partyline-Event-Id (the id again) and Partyline-Signature:
// "t=UNIX,v1=HEX", HEX the HMAC-SHA256, keyed with the webhook's secret
// as printed, of "UNIX.body" (Stripe's scheme; Verify checks one). A 2xx
// answer within the timeout (10 s) delivers it; anything else is tried
// again after 10 s, doubling to 1 h, until the event is 24 h old, when it
// is given up and recorded.
//
// The outbox lives in the workspace's bbolt file, in its own buckets:
// the webhooks, one queue per webhook keyed by the feed's sequence number,
// each webhook's last attempts, and the cursor (how far into the inbox's
// feed the outbox has enqueued). The Deliverer reads the feed from the
// cursor, on each commit's signal and when it starts, so events committed
// while no server ran are sent when one starts.
//
// Invariants:
//   - an event is put into every queue that wants it and the cursor moved
//     past it in one transaction: none is enqueued twice or skipped,
//     across restarts (at least once: a crash after a receiver's 2xx and
//     before it is recorded sends it again, with the same id);
//   - a webhook gets the events numbered after the feed's number when it
//     was added, of its types and (when it has one) its number;
//   - each queue is sent in order, one event at a time: an event is sent
//     only when every earlier one was delivered or given up;
//   - a queue holds at most QueueLimit events (100,000); beyond, new events
//     are dropped and recorded; a webhook remembers its last KeepAttempts
//     attempts (100);
//   - the secret is stored (it signs) and shown once, when the webhook is
//     added; nothing else returns or logs it;
//   - every goroutine the Deliverer starts stops before Run returns, and
//     SIP handling never waits for it.
//
// webhook imports inbox; nothing of sip, admin or cmd.
package webhook

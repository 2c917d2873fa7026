// Package sip is partyline's SIP side: the UDP and TCP listeners, the one
// admission pipeline every message passes (admission.go), digest
// authentication, the registrar, the forking proxy for shared numbers and
// its in-dialog routing (proxy.go, route.go, dialog.go), voicemail
// (voicemail.go) and message waiting (mwi.go), and texts (message.go). It
// wraps github.com/emiago/sipgo; no sipgo type leaves this package.
//
// Invariants:
//   - every received message passes admission in order: size limit, parse,
//     required headers, version, CSeq method, Require/Proxy-Require,
//     Request-URI scheme, ban, then (in the handler) authentication and
//     routing; garbage and unsolicited responses get no reply;
//   - a panic while handling one message is recovered, counted and logged;
//     it never stops the server;
//   - an unknown user and a wrong password get the same answer;
//   - nothing is kept for a request before it proves who sent it (a
//     trunk's address, a dialog of ours, or digest credentials with a
//     nonce we sent to that address, counted once, over its own
//     Request-URI): the challenge is stateless and rate-limited per source;
//   - headers are read and removed by name in any case and compact form
//     (headers.go), never in a loop without a bound;
//   - a user's requests carry the user's identity, never what the phone
//     asserted (From, P-Asserted-Identity and the like);
//   - a trunk's addresses are never banned;
//   - a REGISTER is answered 200 only after its bindings are committed;
//   - nothing reaches a trunk unless it comes from an authenticated member
//     of the shared number it goes out as (calls and texts alike);
//   - a text from a trunk is answered 200 only after it is stored;
//   - finished transactions are kept as RFC 3261 says (32 s over UDP,
//     Timers D and J): a request resent within that is answered again and
//     handled once.
package sip

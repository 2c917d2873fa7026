// Package sip is partyline's SIP side: the UDP and TCP listeners, the one
// admission pipeline every message passes (admission.go), the registrar,
// and digest authentication. It wraps github.com/emiago/sipgo; no sipgo
// type leaves this package.
//
// Invariants:
//   - every received message passes admission in order: size limit, parse,
//     required headers, version, CSeq method, Require/Proxy-Require,
//     Request-URI scheme, ban, then (in the handler) authentication and
//     routing; garbage and unsolicited responses get no reply;
//   - a panic while handling one message is recovered, counted and logged;
//     it never stops the server;
//   - an unknown user and a wrong password get the same answer;
//   - a REGISTER is answered 200 only after its bindings are committed.
package sip

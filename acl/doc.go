// Package acl is partyline's directory and its rules: the users of the
// workspace, the shared numbers and who belongs to them, the plan, and the
// carrier trunks; and who may do what to each.
//
// The rules (Decide) are pure functions of roles, table-tested over every
// role pair. The Directory persists the model in the workspace's bbolt file
// and keeps an immutable in-memory Snapshot for readers, replaced whole after
// every committed change, so the SIP hot path (who rings, which trunk is
// this) never takes a lock.
//
// Invariants:
//   - a refused or invalid change writes nothing;
//   - passwords are never stored or logged: a user holds only the digest HA1
//     values (MD5 and SHA-256) for the workspace realm and an argon2id hash
//     for logins over HTTP (password.go says why both);
//   - a number never has more members than its plan allows, and never loses
//     its last owner; the workspace never loses its last owner.
//
// acl imports nothing of sip, media or cmd.
package acl

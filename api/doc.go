// Package api is partyline's HTTP surface: the JSON API under /api/v1/ that
// the web inbox and scripts use, with per-user logins.
//
// Every resource is an admin operation (admin.Service.Handle) run as the
// logged-in user: the rules and the error texts are the CLI's, there is no
// second copy of them here. What this package adds is who the user is:
//
//   - a login (POST /api/v1/session) checks the password against the
//     user's argon2id hash (acl.Directory.VerifyPassword) and starts a
//     session: a random 256-bit id in a cookie (HttpOnly, SameSite=Lax,
//     Secure under TLS); the server keeps only the id's SHA-256, in the
//     bbolt file (sessions.go). A session ends on logout, after SessionIdle
//     without a request or SessionMax in all, and at once when the user's
//     password or workspace role changes, or the user is removed;
//   - an API token (Authorization: Bearer plt_...) acts as its user
//     (acl.Snapshot.TokenUser); "partyline token" makes and revokes them;
//   - wrong passwords and tokens count toward a ban per source IP and user,
//     with SIP's thresholds and its log line (bans.go);
//   - every state-changing request must come from the same origin
//     (http.CrossOriginProtection): a cross-site form or fetch is refused.
//
// routes.go lists every route; each action is one file named after it;
// middleware.go holds what runs around them.
//
// Invariants: no password, session id or token reaches a log line or a
// response other than the one that created it; a resource of a number the
// user is not a member of answers exactly as a missing one (a workspace
// owner or admin, who may see the number, is told to add themselves, as
// in the CLI); a refused request changes nothing.
package api

// Package admin is partyline's management surface: the operations behind
// the CLI, the admin endpoint a running server offers on a unix socket in
// its data directory, and the client that reaches either.
//
// Every CLI command becomes one Request (acting user, operation, JSON
// arguments) answered by Service.Handle, whether the server runs (the
// request crosses the socket and takes effect in the server at once) or not
// (the CLI opens the data directory itself). The same code decides both
// ways, so rules, errors and output are identical.
//
// The service owns no store: cmd/partyline, the composition root, opens the
// bbolt file and the stores on it (acl, location, inbox) and hands them to
// New, for the server and for a command run without one alike. Each group
// of operations is one file, listed in operations().
//
// Invariants: passwords cross the socket but are never logged or returned;
// the socket is mode 0600 inside a 0700 directory; a failed operation
// changes nothing.
package admin

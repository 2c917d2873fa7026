// Package location is partyline's location service (the registrar's
// bindings, as Kamailio's usrloc): which devices each user has registered,
// from where, over which transport, until when.
//
// Bindings live in memory for lookups and in the workspace's bbolt file for
// restarts. A change is acknowledged only after it is committed; concurrent
// changes share one commit (bbolt's Batch), so a burst of REGISTERs costs a
// few fsyncs, not one each. Time is injected: expiry uses the Store's clock.
//
// location imports nothing of sip, media or cmd.
package location

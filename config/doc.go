// Package config holds partyline's typed settings, each with its default,
// and checks them. It imports nothing of sip, media or cmd.
package config

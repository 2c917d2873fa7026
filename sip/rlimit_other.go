//go:build !unix

package sip

// descriptorLimit: no RLIMIT_NOFILE outside Unix; MaxConns then takes its
// ceiling.
func descriptorLimit() uint64 { return 0 }

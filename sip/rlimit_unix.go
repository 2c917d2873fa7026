//go:build unix

package sip

import "syscall"

// descriptorLimit is the process's soft RLIMIT_NOFILE, 0 when unknown.
//
// It is not raised here: since Go 1.19 the syscall package's init raises
// the soft limit to the hard one (to hard-1, in syscall/rlimit.go; capped
// at OPEN_MAX on macOS) for every Go program on Unix, so a server started
// with the common soft limit of 1024 already has what its hard limit
// allows (go.dev/issue/46279). Raising the hard limit is the operator's
// (systemd LimitNOFILE=, ulimit -Hn).
func descriptorLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return uint64(lim.Cur)
}

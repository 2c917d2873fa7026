//go:build !linux

package admin

import (
	"errors"
	"net"
)

// peerUID: peer credentials are read on Linux only (SO_PEERCRED). Elsewhere
// checkPeer fails, so the CLI refuses to use a running server's admin
// socket rather than send to one it cannot vouch for.
func peerUID(c net.Conn) (uid, pid int, err error) {
	return 0, 0, errors.New("peer credentials are read on Linux only")
}

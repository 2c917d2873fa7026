//go:build !linux

package sip

import "net"

// directSender: sendto(2) on the descriptor is Linux only (send_linux.go);
// elsewhere every datagram goes through the net package.
type directSender struct{}

func newDirectSender(net.PacketConn) *directSender { return nil }

func (*directSender) send([]byte, net.Addr) (int, bool, error) { return 0, false, nil }

func (*directSender) close() {}

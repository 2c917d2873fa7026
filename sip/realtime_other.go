//go:build !linux

package sip

import (
	"fmt"
	"net"
)

// checkRealtime: real-time receive needs Linux (sched_setattr(2)).
func checkRealtime(prio int) error {
	return fmt.Errorf("real-time priority %d: supported on Linux only; leave it unset", prio)
}

type rtReader struct{}

func (c *packetConn) readRealtime(b []byte) (int, net.Addr, error) {
	return c.PacketConn.ReadFrom(b)
}

func (c *packetConn) releaseRealtime() {}

package sip

// The listening sockets: UDP and TCP on the same port, one UDP socket per
// CPU sharing it (SO_REUSEPORT).

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// bind opens UDP and TCP on addr; with port 0, one free port for both.
// Over UDP it opens one socket per CPU on the same port (SO_REUSEPORT):
// the kernel spreads senders over them, so admission and parsing run on
// every core instead of in one reading goroutine; one sender always lands
// on the same socket, so its messages keep their order.
func (s *Server) bind(addr string) error {
	lc := net.ListenConfig{Control: reusePort}
	ctx := context.Background()
	for try := 0; try < 20; try++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return fmt.Errorf("listening on udp %s: %w", addr, err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if _, port, _ := net.SplitHostPort(addr); port == "0" {
				continue // the TCP port was taken: pick another pair
			}
			return fmt.Errorf("listening on tcp %s: %w", addr, err)
		}
		s.udp = append(s.udp, s.wrapUDP(pc))
		s.addrs = append(s.addrs, pc.LocalAddr().(*net.UDPAddr).AddrPort())
		s.tcp = append(s.tcp, newListener(ln, s))
		for i := 1; i < s.udpReaders; i++ {
			sib, err := lc.ListenPacket(ctx, "udp", pc.LocalAddr().String())
			if err != nil {
				s.Log.Warn("one UDP reader only", "addr", pc.LocalAddr().String(), "error", err)
				break
			}
			s.udpSiblings = append(s.udpSiblings, s.wrapUDP(sib))
		}
		return nil
	}
	return fmt.Errorf("no free port pair for %s", addr)
}

func (s *Server) wrapUDP(pc net.PacketConn) net.PacketConn {
	if uc, ok := pc.(*net.UDPConn); ok {
		// Absorb bursts while a reader is not scheduled (the kernel caps
		// this at net.core.rmem_max).
		uc.SetReadBuffer(4 << 20)
	}
	return &packetConn{PacketConn: pc, s: s, buf: make([]byte, 1<<16)}
}

// reusePort sets SO_REUSEPORT so sibling sockets can share a UDP port.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// Addrs are the bound addresses (each on UDP and TCP).
func (s *Server) Addrs() []netip.AddrPort {
	return slices.Clip(s.addrs) // read on every request: not copied
}

func (s *Server) closeSockets() {
	for _, pc := range append(s.udp, s.udpSiblings...) {
		pc.Close()
	}
	for _, ln := range s.tcp {
		ln.Close()
	}
}

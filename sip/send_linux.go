package sip

import (
	"errors"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// directSender sends datagrams on a UDP socket with sendto(2) straight on
// its descriptor. Go's net package lets one write at a time through a
// socket (its fdMutex), and every goroutine of the server sends through
// the few listening sockets: a real-time reader about to send a call's
// branch INVITEs waited there behind a normal-priority goroutine whose
// thread the kernel had put aside mid-write (the runtime trace of
// bench/fork3.sh: 374 waits in 8 s, up to 2 ms). The kernel needs no such
// lock for datagrams.
type directSender struct {
	mu     sync.RWMutex // senders share it; close takes it whole, so fd is never used after close
	fd     int
	family int // AF_INET or AF_INET6
	closed bool
}

// newDirectSender returns nil when pc has no descriptor to send on: the
// caller then sends through pc.
func newDirectSender(pc net.PacketConn) *directSender {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	d := &directSender{fd: -1}
	raw.Control(func(fd uintptr) {
		family, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil || (family != unix.AF_INET && family != unix.AF_INET6) {
			return
		}
		// A descriptor of our own, so Go closing pc's never pulls ours
		// from under a send: closed on close.
		dup, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return
		}
		d.fd, d.family = dup, family
	})
	if d.fd < 0 {
		return nil
	}
	return d
}

// send sends b to addr; ok is false when it could not be sent this way
// (closed, an address it does not take, a full socket buffer), and the
// caller then sends through the net package, which also reports closes.
func (d *directSender) send(b []byte, addr net.Addr) (n int, ok bool, err error) {
	ua, isUDP := addr.(*net.UDPAddr)
	if !isUDP || ua.Zone != "" {
		return 0, false, nil
	}
	var sa unix.Sockaddr
	if ip4 := ua.IP.To4(); ip4 != nil && d.family == unix.AF_INET {
		s4 := &unix.SockaddrInet4{Port: ua.Port}
		copy(s4.Addr[:], ip4)
		sa = s4
	} else if len(ua.IP) == net.IPv6len || ip4 != nil {
		if d.family != unix.AF_INET6 {
			return 0, false, nil
		}
		s6 := &unix.SockaddrInet6{Port: ua.Port}
		copy(s6.Addr[:], ua.IP.To16()) // an IPv4 address as ::ffff:a.b.c.d
		sa = s6
	} else {
		return 0, false, nil
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return 0, false, nil
	}
	err = unix.Sendto(d.fd, b, 0, sa)
	if errors.Is(err, unix.EAGAIN) {
		return 0, false, nil
	}
	if err != nil {
		return 0, true, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: err}
	}
	return len(b), true, nil
}

func (d *directSender) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		unix.Close(d.fd)
	}
}

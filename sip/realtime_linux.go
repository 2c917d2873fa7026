package sip

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Real-time receive (Server.Realtime). With five busy programs beside it
// on two cores, the server's wake-up on a datagram waited for their time
// slices and for Go's run queue: most of the fan-out's tail. With
// Realtime set, the goroutine reading each UDP socket keeps an OS thread
// of its own under SCHED_RR, blocked in the kernel on the socket (ppoll(2))
// rather than in Go's network poller, and keeps its P meanwhile
// (pollHoldingP), so a datagram wakes that thread and runs Go code at
// once; a carrier's INVITE is then forked on it (arrival.go). Every other
// thread stays on the normal scheduler: with all of them real-time the
// machine saturated and the calls/s collapsed (BENCHMARKS.md).

// checkRealtime fails unless this process may run a thread under SCHED_RR
// at prio: it tries on the calling goroutine's thread, then puts the
// thread back.
func checkRealtime(prio int) error {
	if prio < 1 || prio > 99 {
		return fmt.Errorf("real-time priority %d: give one from 1 to 99 (0: the normal scheduler)", prio)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := setThreadRealtime(prio); err != nil {
		return err
	}
	return setThreadNormal()
}

// setThreadNormal puts the calling thread back on the normal scheduler.
func setThreadNormal() error {
	return unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_NORMAL}, 0)
}

// setThreadRealtime puts the calling thread under SCHED_RR at prio.
func setThreadRealtime(prio int) error {
	err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_RR, Priority: uint32(prio)}, 0)
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("real-time priority %d not permitted: run the server as root, give it CAP_SYS_NICE (setcap cap_sys_nice+ep, or systemd AmbientCapabilities=CAP_SYS_NICE), or raise its real-time priority limit (ulimit -r %d, systemd LimitRTPRIO=%d)", prio, prio, prio)
	}
	if err != nil {
		return fmt.Errorf("real-time priority %d: %w", prio, err)
	}
	return nil
}

// How a real-time reader waits for its socket: for at most rtQuiet before
// leaving it to Go's poller; when it keeps its P (Server.holdP), in
// pollSlice steps.
const (
	rtQuiet   = 250 * time.Millisecond
	pollSlice = 10 * time.Millisecond
)

// pollHoldingP waits up to d for fd to be readable without telling the Go
// scheduler, so the goroutine keeps its P while the thread sleeps in the
// kernel: a datagram then runs Go code the moment the thread wakes,
// instead of first asking the scheduler for a P, which under load (and in
// every GC mark phase, when idle Ps run mark workers) took milliseconds.
// The scheduler still sees a running goroutine: a preemption request (a
// signal) ends the wait with EINTR and the caller's next function call
// yields, so neither the GC nor sysmon waits on it.
func pollHoldingP(fd int, d time.Duration) (int, error) {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	ts := unix.NsecToTimespec(int64(d))
	r, _, e := syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// rtReader is the real-time half of a packetConn.
type rtReader struct {
	raw      syscall.RawConn
	released bool
}

// release gives the reading goroutine's thread back, on the normal
// scheduler, once the socket is done.
func (c *packetConn) releaseRealtime() {
	if c.rt == nil || c.rt.released {
		return
	}
	c.rt.released = true
	if err := setThreadNormal(); err != nil {
		// Keep the thread: it exits with the goroutine, never reused.
		return
	}
	runtime.UnlockOSThread()
}

// readRealtime reads one datagram into b on a real-time thread, blocking
// in the kernel. The first call takes the thread: sipgo reads each socket
// from one goroutine for the socket's life.
func (c *packetConn) readRealtime(b []byte) (int, net.Addr, error) {
	if c.rt == nil {
		sc, ok := c.PacketConn.(syscall.Conn)
		if !ok {
			return c.PacketConn.ReadFrom(b)
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return 0, nil, err
		}
		runtime.LockOSThread()
		if err := setThreadRealtime(c.s.Realtime); err != nil {
			c.s.Log.Error("SIP receive thread stays on the normal scheduler", "addr", c.LocalAddr().String(), "error", err)
		} else {
			c.s.Log.Info("SIP receive thread under SCHED_RR", "addr", c.LocalAddr().String(), "priority", c.s.Realtime)
		}
		c.rt = &rtReader{raw: raw}
	}
	var n int
	var from unix.Sockaddr
	var rerr error
	var waited time.Duration
	err := c.rt.raw.Read(func(fd uintptr) bool {
		for {
			n, from, rerr = unix.Recvfrom(int(fd), b, 0)
			if !errors.Is(rerr, unix.EAGAIN) {
				return true
			}
			// Wait in the kernel, this thread ours; after a quarter second of quiet
			// let Go's poller wait instead, which also notices a close.
			if waited >= rtQuiet {
				waited = 0
				return false
			}
			var k int
			var perr error
			if c.s.holdP {
				k, perr = pollHoldingP(int(fd), pollSlice)
				waited += pollSlice
			} else {
				k, perr = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(rtQuiet/time.Millisecond))
				if perr == nil {
					waited = rtQuiet
				}
			}
			if perr == nil && k > 0 {
				waited = 0
			}
			if perr != nil && !errors.Is(perr, unix.EINTR) {
				return false
			}
		}
	})
	if err != nil {
		return 0, nil, err
	}
	if rerr != nil {
		return 0, nil, rerr
	}
	switch sa := from.(type) {
	case *unix.SockaddrInet4:
		return n, &net.UDPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}, nil // as net.UDPConn gives it
	case *unix.SockaddrInet6:
		addr := &net.UDPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				addr.Zone = ifi.Name
			}
		}
		return n, addr, nil
	}
	return n, nil, fmt.Errorf("datagram from an unknown address family")
}

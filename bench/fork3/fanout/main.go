//go:build linux

// Command fanout measures a forking proxy's fan-out on loopback, for
// bench/fork3.sh: for every INVITE a caller sends to the proxy, the time
// from that packet to the first and to the last of the proxy's INVITEs to
// the devices with the same Call-ID. Times are the kernel's timestamps of
// the packets as they leave on lo (an AF_PACKET socket, so it needs root),
// not when this program reads them: its own scheduling does not blur the
// figures, though its CPU use (small) is taken from the machine under test.
// Retransmissions are ignored: the first copy of each INVITE counts.
//
// Usage: fanout -server PORT -in PORT[,PORT...] -out PORT[,PORT...] [-for 30s]
// It stops after -for or on SIGINT/SIGTERM and prints one summary line.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	ethPAll        = 0x0003 // ETH_P_ALL
	packetOutgoing = 4      // PACKET_OUTGOING: the copy of a packet as it is sent
	solPacket      = 263    // SOL_PACKET
	packetStats    = 6      // PACKET_STATISTICS
)

// inviteFilter is a classic BPF program: accept (up to 256 KiB of) the
// outgoing copy of an IPv4 UDP packet whose payload begins "INVI"; drop
// the rest. On lo the link layer is a 14-byte Ethernet header.
var inviteFilter = []syscall.SockFilter{
	{Code: 0x20, K: 0xfffff000 + 4},               // A = skb->pkt_type (SKF_AD_OFF + SKF_AD_PKTTYPE)
	{Code: 0x15, Jt: 0, Jf: 8, K: packetOutgoing}, // sent copy, else drop
	{Code: 0x28, K: 12},                           // A = ethertype
	{Code: 0x15, Jt: 0, Jf: 6, K: 0x0800},         // IPv4, else drop
	{Code: 0x30, K: 23},                           // A = IP protocol
	{Code: 0x15, Jt: 0, Jf: 4, K: 17},             // UDP, else drop
	{Code: 0xb1, K: 14},                           // X = IP header length
	{Code: 0x40, K: 14 + 8},                       // A = the payload's first 4 bytes
	{Code: 0x15, Jt: 0, Jf: 1, K: 0x494e5649},     // "INVI", else drop
	{Code: 0x06, K: 1 << 18},                      // accept
	{Code: 0x06, K: 0},                            // drop
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func ports(s string) map[int]bool {
	m := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		if p, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			m[p] = true
		}
	}
	return m
}

// call is what was seen of one Call-ID.
type call struct {
	in   time.Time
	src  int               // the caller's port
	outs map[int]time.Time // first INVITE to each device port
}

func main() {
	server := flag.Int("server", 0, "the proxy's UDP port")
	in := flag.String("in", "", "the callers' UDP ports, comma-separated")
	out := flag.String("out", "", "the devices' UDP ports, comma-separated")
	limit := flag.Duration("for", 30*time.Second, "stop after this long")
	dump := flag.String("dump", "", "also write each call to this file: the INVITE's kernel time (Unix ns), its source port, first and last branch out (ns after it)")
	flag.Parse()
	inPorts, outPorts := ports(*in), ports(*out)
	if *server == 0 || len(inPorts) == 0 || len(outPorts) == 0 {
		fmt.Fprintln(os.Stderr, "usage: fanout -server PORT -in PORT[,PORT...] -out PORT[,PORT...] [-for 30s]")
		os.Exit(2)
	}
	fd, err := open()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
	defer syscall.Close(fd)

	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; stop.Store(true) }()
	deadline := time.Now().Add(*limit)
	fmt.Fprintln(os.Stderr, "fanout: capturing")

	calls := map[string]*call{}
	var rows []byte // for -dump
	var first, last []time.Duration
	buf := make([]byte, 1<<16)
	oob := make([]byte, 256)
	for !stop.Load() && time.Now().Before(deadline) {
		n, oobn, _, from, err := syscall.Recvmsg(fd, buf, oob, 0)
		if err != nil {
			continue // the receive timeout (EAGAIN) or a signal (EINTR)
		}
		if ll, ok := from.(*syscall.SockaddrLinklayer); !ok || ll.Pkttype != packetOutgoing {
			continue // lo shows every packet twice: keep the sent copy
		}
		ts, ok := timestamp(oob[:oobn])
		if !ok {
			continue
		}
		src, dst, payload, ok := udp(buf[:n])
		if !ok || !bytes.HasPrefix(payload, []byte("INVITE ")) {
			continue
		}
		id := callID(payload)
		if id == "" {
			continue
		}
		switch {
		case dst == *server && inPorts[src]:
			if calls[id] == nil {
				calls[id] = &call{in: ts, src: src, outs: map[int]time.Time{}}
			}
		case src == *server && outPorts[dst]:
			c := calls[id]
			if c == nil || c.in.IsZero() {
				continue // a retransmission after the call was counted
			}
			if _, seen := c.outs[dst]; seen {
				continue
			}
			c.outs[dst] = ts
			if len(c.outs) == len(outPorts) {
				lo, hi := ts, ts
				for _, t := range c.outs {
					lo, hi = minTime(lo, t), maxTime(hi, t)
				}
				first = append(first, lo.Sub(c.in))
				last = append(last, hi.Sub(c.in))
				if *dump != "" {
					rows = fmt.Appendf(rows, "%d %d %d %d\n", c.in.UnixNano(), c.src, lo.Sub(c.in), hi.Sub(c.in))
				}
				c.in = time.Time{} // done; the entry stays to ignore retransmissions
			}
		}
	}
	incomplete := 0
	for _, c := range calls {
		if !c.in.IsZero() {
			incomplete++
		}
	}
	if *dump != "" {
		if err := os.WriteFile(*dump, rows, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "fanout:", err)
		}
	}
	received, drops := stats(fd)
	fmt.Printf("fan-out over %d calls (INVITE in -> first / last of %d branch INVITEs out): "+
		"first p50 %s p99 %s; last p50 %s p90 %s p99 %s max %s; %d calls without every branch; "+
		"capture saw %d packets, dropped %d\n",
		len(last), len(outPorts), pct(first, 50), pct(first, 99), pct(last, 50), pct(last, 90), pct(last, 99), pct(last, 100),
		incomplete, received, drops)
}

func open() (int, error) {
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(ethPAll)))
	if err != nil {
		return -1, fmt.Errorf("packet socket (needs root): %w", err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		syscall.Close(fd)
		return -1, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPAll), Ifindex: lo.Index}); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("binding to lo: %w", err)
	}
	// The kernel hands over only what counts: the sent copy of an IPv4
	// UDP packet whose payload starts with "INVI". Everything else (about
	// 20 of every 24 packets of a forked call, and both copies loopback
	// shows) never wakes this program, which shares the cores with the
	// server it measures.
	if err := syscall.AttachLsf(fd, inviteFilter); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("attaching the packet filter: %w", err)
	}
	// A large buffer rides out bursts; the drop count tells if it did not.
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 256<<20)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	tv := syscall.Timeval{Usec: 200_000} // to look at the deadline and signals
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	return fd, nil
}

// timestamp reads the kernel's SCM_TIMESTAMPNS.
func timestamp(oob []byte) (time.Time, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SO_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

// udp takes an Ethernet frame (lo has a zeroed 14-byte header) carrying
// IPv4 and UDP apart.
func udp(f []byte) (src, dst int, payload []byte, ok bool) {
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 {
		return 0, 0, nil, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ip[9] != syscall.IPPROTO_UDP || len(ip) < ihl+8 {
		return 0, 0, nil, false
	}
	u := ip[ihl:]
	return int(binary.BigEndian.Uint16(u[0:2])), int(binary.BigEndian.Uint16(u[2:4])), u[8:], true
}

// callID finds the Call-ID header (or its compact form i:).
func callID(msg []byte) string {
	for _, name := range [][]byte{[]byte("\nCall-ID:"), []byte("\ni:")} {
		if i := bytes.Index(msg, name); i >= 0 {
			v := msg[i+len(name):]
			if j := bytes.IndexByte(v, '\n'); j >= 0 {
				v = v[:j]
			}
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}

func stats(fd int) (packets, drops uint32) {
	var s struct{ packets, drops uint32 }
	l := uint32(unsafe.Sizeof(s))
	syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), solPacket, packetStats,
		uintptr(unsafe.Pointer(&s)), uintptr(unsafe.Pointer(&l)), 0)
	return s.packets, s.drops
}

// pct is the p-th percentile (nearest rank), rounded to the microsecond.
func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)].Round(time.Microsecond).String()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

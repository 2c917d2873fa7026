package sip

import (
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDirectSend: datagrams sent past the net package's write lock arrive
// whole, from the listening port, over IPv4, IPv6 and from a dual-stack
// socket to an IPv4 peer; after Close a send fails as the net package's
// does and the descriptor of our own is gone.
func TestDirectSend(t *testing.T) {
	for _, tc := range []struct{ listen, peer string }{
		{"127.0.0.1:0", "127.0.0.1:0"},
		{"[::1]:0", "[::1]:0"},
		{"[::]:0", "127.0.0.1:0"},    // AF_INET6 socket, IPv4-mapped destination
		{"0.0.0.0:0", "127.0.0.1:0"}, // the default listen address (Go makes it dual-stack)
	} {
		t.Run(tc.listen+"->"+tc.peer, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			c := &packetConn{PacketConn: pc, out: newDirectSender(pc)}
			if c.out == nil {
				t.Fatal("no direct sender for a UDP socket")
			}
			peer, err := net.ListenPacket("udp", tc.peer)
			if err != nil {
				c.Close()
				t.Fatal(err)
			}
			defer peer.Close()
			msg := []byte("OPTIONS sip:x SIP/2.0\r\n\r\n")
			if n, sent, err := c.out.send(msg, peer.LocalAddr()); !sent || err != nil || n != len(msg) {
				t.Fatalf("direct send: %d, sent %v, %v (the net package would have sent it)", n, sent, err)
			}
			peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 100)
			n, from, err := peer.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if string(buf[:n]) != string(msg) {
				t.Fatalf("got %q", buf[:n])
			}
			if got, want := from.(*net.UDPAddr).Port, pc.LocalAddr().(*net.UDPAddr).Port; got != want {
				t.Fatalf("sent from port %d, want the listening port %d", got, want)
			}
			fd := c.out.fd
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.WriteTo(msg, peer.LocalAddr()); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("WriteTo after Close: %v, want net.ErrClosed", err)
			}
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
				t.Fatalf("descriptor %d still open after Close: %v", fd, err)
			}
		})
	}
}

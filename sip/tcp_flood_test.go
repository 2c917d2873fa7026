package sip

// The 20,000-connection flood (issue 14, finding 2) and its child process.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lowerNofile lowers the process's soft RLIMIT_NOFILE to soft (when it
// is above) until restore is called or the test ends.
func lowerNofile(t *testing.T, soft uint64) (restore func()) {
	t.Helper()
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	restore = sync.OnceFunc(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	t.Cleanup(restore)
	lim := syscall.Rlimit{Cur: min(soft, uint64(orig.Cur)), Max: orig.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	return restore
}

// lowestFreeFD is the descriptor the next open gets.
func lowestFreeFD(t *testing.T) uint64 {
	t.Helper()
	fd, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	return uint64(fd)
}

// floodVar, in a child process of TestTCPFlood, is "ADDR N": connect N
// times to ADDR (see TestTCPFloodHelper).
const floodVar = "PARTYLINE_TEST_TCP_FLOOD"

// TestTCPFlood: 20,000 idle TCP connections from one address (audit
// issue 14) would take a descriptor each and end every listener when the
// server ran out. With the per-source cap they hold 128; another address
// still registers over TCP and is answered, UDP still answers, and
// afterwards every listener is still bound. The connections come from
// child processes (each has its own descriptors), and the server gets
// room for 4,096 more descriptors than it has: without the cap the flood
// takes them all.
func TestTCPFlood(t *testing.T) {
	const n = 20000
	e := newEnv(t, nil)
	start := time.Now()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	perChild := int(min(uint64(n/2), uint64(lim.Max)-64)) // a child raises its soft limit to the hard one
	lowerNofile(t, lowestFreeFD(t)+4096)

	var children []floodChild
	for left := n; left > 0; left -= perChild {
		children = append(children, startFloodChild(t, e, min(left, perChild)))
	}
	var connected, reset int
	for _, c := range children {
		// "CONNECTED RESET FAILED FIRST-ERROR": a reset is a connection
		// the server refused just as it was made.
		var ok, rst, failed int
		var first string
		r := recvWithin(t, c.result, "a child's connections", time.Minute)
		if _, err := fmt.Sscanf(r, "%d %d %d %q", &ok, &rst, &failed, &first); err != nil {
			t.Fatalf("child reported %q: %v", r, err)
		}
		if failed > 0 {
			t.Errorf("%d connections of %d failed, the first with: %s", failed, ok+rst+failed, first)
		}
		connected, reset = connected+ok, reset+rst
	}
	t.Logf("%d connections from 127.0.0.1 in %v (%d reset as they were made)", connected+reset, time.Since(start).Round(time.Millisecond), reset)

	// Another address registers over TCP and its OPTIONS is answered: the
	// listener works. Its connection is accepted after every one above.
	phone := dialSIP(t, e, "127.0.0.2")
	phone.register("alice")
	phone.options("flood-opt")
	if b := e.loc.Lookup("alice"); len(b) != 1 {
		t.Fatalf("alice's bindings after registering over TCP: %+v", b)
	}
	// and calls from there over TCP: alice rings bob's phone, he answers.
	numberWith(t, e, "alice", "bob")
	bob := newDevice(t, e, "bob", "udp", func(d *device) { d.answer <- 200 })
	caller := newRawPeer(t, e, "TCP", "127.0.0.2")
	if res := caller.call(e, "sip:bob@"+e.addr.String(), "alice", "flood-call", 5*time.Second); statusCode(res) != 200 {
		t.Fatalf("alice's call to bob during the flood: %q", res)
	}
	recv(t, bob.invites, "bob's INVITE")
	udpOptions(t, e)
	stillServing(t, e)

	held := e.srv.MaxConnsPerSource
	_, open := e.srv.conns.counts(netip.MustParseAddr("127.0.0.1"))
	if refused := e.srv.Stats().TCPRefused; open != held || refused != int64(n-held) {
		t.Errorf("from 127.0.0.1: %d connections open, %d refused; want %d and %d", open, refused, held, n-held)
	}
	lines := strings.Count(e.log.String(), "event=tcp_conn_limit")
	if secs := int(time.Since(start)/securityLogEvery) + 1; lines < 1 || lines > secs {
		t.Errorf("%d tcp_conn_limit lines in %d s, want 1 to %d (rate-limited)", lines, secs, secs)
	}

	// The flood ends; every listener is still there.
	for _, c := range children {
		c.stdin.Close()
	}
	for _, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}
	dialSIP(t, e, "127.0.0.3").options("after-flood")
	udpOptions(t, e)
	stillServing(t, e)
	e.noPanics()
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// TestTCPFloodHelper is TestTCPFlood's child process: it connects as
// floodVar says (64 connections in flight), reports on stdout how that
// went and holds the connections until stdin ends.
func TestTCPFloodHelper(t *testing.T) {
	spec := os.Getenv(floodVar)
	if spec == "" {
		t.Skip("TestTCPFlood's child process")
	}
	addr, count, _ := strings.Cut(spec, " ")
	n, err := strconv.Atoi(count)
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)

	conns := make([]net.Conn, n)
	var mu sync.Mutex
	var ok, reset, failed int
	first := ""
	var wg sync.WaitGroup
	const dialers = 64
	for w := range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 10 * time.Second}
			for i := w; i < n; i += dialers {
				c, err := d.Dial("tcp", addr)
				mu.Lock()
				switch {
				case err == nil:
					conns[i] = c
					ok++
				case errors.Is(err, syscall.ECONNRESET):
					reset++
				default:
					if failed++; first == "" {
						first = err.Error()
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("flood: %d %d %d %q\n", ok, reset, failed, first)
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// floodChild is one process of TestTCPFloodHelper holding connections.
type floodChild struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	result chan string
}

// startFloodChild starts a child that opens n connections to e and holds
// them until its stdin closes (at the test's end at the latest).
func startFloodChild(t *testing.T, e *env, n int) floodChild {
	t.Helper()
	c := floodChild{cmd: exec.Command(os.Args[0], "-test.run=^TestTCPFloodHelper$"), result: make(chan string, 1)}
	c.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", floodVar, e.addr, n))
	c.cmd.Stderr = os.Stderr
	stdin, err := c.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.stdin = stdin
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if r, ok := strings.CutPrefix(sc.Text(), "flood: "); ok {
				c.result <- r
			}
		}
	}()
	t.Cleanup(func() { stdin.Close(); c.cmd.Wait() })
	return c
}

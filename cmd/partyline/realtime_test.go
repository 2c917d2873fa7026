//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadScheduling reads policy and real-time priority of every thread of
// process pid from /proc (proc(5): stat fields 41 and 40).
func threadScheduling(t *testing.T, pid int) map[int][2]int {
	t.Helper()
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int][2]int{}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "stat"))
		if err != nil {
			continue // the thread ended
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // f[0] is field 3
		prio, _ := strconv.Atoi(f[40-3])
		policy, _ := strconv.Atoi(f[41-3])
		tid, _ := strconv.Atoi(task.Name())
		out[tid] = [2]int{policy, prio}
	}
	return out
}

// realtimeAllowed tries SCHED_RR at prio on the calling thread and puts
// the thread back, so the test process itself never runs real-time.
func realtimeAllowed(prio int) bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_RR, Priority: uint32(prio)}, 0) != nil {
		return false
	}
	if err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_NORMAL}, 0); err != nil {
		panic(err) // a test thread left real-time
	}
	return true
}

// TestServeRealtime: --realtime puts the thread reading each UDP socket
// (one per P, and the server takes two Ps more than CPUs) under SCHED_RR
// and no other thread; SIP is answered through them. Where the machine
// does not allow it, the server refuses to start and says how to allow it.
// Out-of-range priorities are refused.
func TestServeRealtime(t *testing.T) {
	for _, bad := range []string{"100", "-1"} {
		r := cli(t, t.TempDir(), "serve", "--sip", "127.0.0.1:0", "--realtime", bad)
		if r.code == 0 || !strings.Contains(r.err, "give a priority from 1 to 99") {
			t.Errorf("--realtime %s: want a refusal naming the range, got %s", bad, r)
		}
	}

	dir := seedDir(t)
	if !realtimeAllowed(7) {
		// No CAP_SYS_NICE, no RLIMIT_RTPRIO, or a cgroup without real-time
		// budget: the server must refuse and say how to allow it.
		r := cli(t, dir, "serve", "--sip", "127.0.0.1:0", "--realtime", "7")
		if r.code == 0 || !strings.Contains(r.err, "not permitted") {
			t.Fatalf("serve --realtime 7 where it is not allowed: want a refusal, got %s", r)
		}
		for _, fix := range []string{"CAP_SYS_NICE", "ulimit -r 7"} {
			if !strings.Contains(r.err, fix) {
				t.Errorf("refusal does not name %q: %s", fix, r)
			}
		}
		return
	}
	procs := 2 * runtime.NumCPU()
	if v, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && v > 0 {
		procs = v
	}
	readers := max(min(runtime.NumCPU(), procs/2), 1)
	s := startServer(t, dir, "--realtime", "7")
	sipAddr := ""
	for _, f := range strings.Fields(s.await(t, " sip=")) {
		if v, ok := strings.CutPrefix(f, "sip="); ok {
			sipAddr = v
		}
	}
	// Each reader says so when it has its thread.
	deadline := time.After(15 * time.Second)
	for strings.Count(s.logText(), `msg="SIP receive thread under SCHED_RR"`) < readers {
		select {
		case <-s.more:
		case <-s.exited:
			t.Fatalf("server exited:\n%s", s.logText())
		case <-deadline:
			t.Fatalf("fewer than %d receive threads under SCHED_RR:\n%s", readers, s.logText())
		}
	}
	// SIP through those threads.
	c, err := net.Dial("udp", sipAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := c.LocalAddr().(*net.UDPAddr).Port
	fmt.Fprintf(c, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-rt1\r\n"+
		"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: rt1@test\r\nCSeq: 1 OPTIONS\r\n"+
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", sipAddr, port, sipAddr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
		t.Fatalf("OPTIONS through the real-time readers: %q, %v", buf[:n], err)
	}
	rr, other := 0, 0
	for tid, sched := range threadScheduling(t, s.cmd.Process.Pid) {
		switch sched {
		case [2]int{2, 7}: // SCHED_RR, 7
			rr++
		case [2]int{0, 0}: // SCHED_OTHER
			other++
		default:
			t.Errorf("thread %d: policy %d priority %d", tid, sched[0], sched[1])
		}
	}
	if rr != readers || other == 0 {
		t.Errorf("%d threads under SCHED_RR 7 (want %d, the UDP readers), %d on the normal scheduler (want some)", rr, readers, other)
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Errorf("server exit after SIGTERM: %v", err)
	}
}

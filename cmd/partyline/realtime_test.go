//go:build linux

package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

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

// realtimeAllowed tries SCHED_RR at prio on a thread of its own, which
// ends with its goroutine, so the test process itself never runs real-time.
func realtimeAllowed(prio int) bool {
	ok := make(chan bool)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_RR, Priority: uint32(prio)}, 0)
		ok <- err == nil
	}()
	return <-ok
}

// TestServeRealtime: --realtime puts every thread of the server under
// SCHED_RR, the threads the runtime starts while it serves included; where
// the machine does not allow it, the server refuses to start and says how
// to allow it. Out-of-range priorities are refused before anything starts.
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
	s := startServer(t, dir, "--realtime", "7")
	s.await(t, `msg="real-time scheduling" policy=SCHED_RR priority=7`)
	// Work through the running server, so that it runs more goroutines
	// (and the runtime, if it needs them, more threads).
	for i := 0; i < 20; i++ {
		ok(t, dir, "user", "add", "rt"+strconv.Itoa(i), "--password", "secret-rt", "--role", "member")
		ok(t, dir, "number", "show", "+15551230001")
		ok(t, dir, "calls", "--number", "+15551230001")
	}
	threads := threadScheduling(t, s.cmd.Process.Pid)
	if len(threads) < 2 {
		t.Fatalf("server has %d threads", len(threads))
	}
	for tid, sched := range threads {
		if sched != [2]int{2, 7} { // SCHED_RR
			t.Errorf("thread %d: policy %d priority %d, want SCHED_RR (2) priority 7", tid, sched[0], sched[1])
		}
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Errorf("server exit after SIGTERM: %v", err)
	}
}

//go:build linux

package sip

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/emiago/sipgo"

	"github.com/partyline/partyline/inbox"
)

// rtThreads counts this process's threads under SCHED_RR (proc(5): stat
// field 41 is the policy, 2).
func rtThreads(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 41-3 && f[41-3] == "2" {
			n++
		}
	}
	return n
}

// TestForkRealtimeReceive: with Realtime set, a carrier's call is read on
// real-time threads, forked on arrival and answered end to end; when the
// server stops, its threads go back to the normal scheduler. Where the
// process may not use real-time scheduling, Start says how to allow it.
func TestForkRealtimeReceive(t *testing.T) {
	if err := checkRealtime(5); err != nil {
		s := New(nil, nil, nil)
		s.Realtime = 5
		s.Listen = []string{"127.0.0.1:0"}
		if err := s.Start(); err == nil || !strings.Contains(err.Error(), "CAP_SYS_NICE") {
			t.Fatalf("Start with Realtime where it is not allowed: %v", err)
		}
		return
	}
	if n := rtThreads(t); n != 0 {
		t.Fatalf("%d real-time threads before the server starts", n)
	}
	e := newEnv(t, func(s *Server) { s.Realtime = 5 })
	numberWith(t, e, "alice", "bob")
	alice, bob := newDevice(t, e, "alice", "udp"), newDevice(t, e, "bob", "udp")
	car := newCarrier(t, e)
	s, err := car.call(e, "15551230001")
	if err != nil {
		t.Fatal(err)
	}
	recv(t, alice.invites, "alice's INVITE")
	recv(t, bob.invites, "bob's INVITE")
	alice.answer <- 200
	if err := s.WaitAnswer(context.Background(), sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	recv(t, bob.cancels, "bob's CANCEL")
	if err := s.Ack(context.Background()); err != nil {
		t.Fatal(err)
	}
	recv(t, alice.acks, "alice's ACK")
	if err := s.Bye(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := lastCall(t, e, func(c inbox.Call) bool { return c.EndedAt != nil })
	if c.Disposition != inbox.Answered || c.AnsweredBy == nil || c.AnsweredBy.User != "alice" {
		t.Fatalf("history: %+v", c)
	}
	if n := rtThreads(t); n == 0 {
		t.Fatal("no thread under SCHED_RR while the server reads")
	}
	e.stop() // returns once the readers are done
	if n := rtThreads(t); n != 0 {
		t.Fatalf("%d threads still under SCHED_RR after the server stopped", n)
	}
	e.noPanics()
}

// TestRealtimeReaders: the readers that keep their P never take more than
// half the Ps or one per CPU, however many addresses the server listens
// on; where that leaves none for an address, each gets one reader that
// gives its P back.
func TestRealtimeReaders(t *testing.T) {
	for _, c := range []struct {
		cpus, procs, addrs, perAddr int
		holdP                       bool
	}{
		{2, 4, 1, 2, true},  // serve --realtime on two CPUs
		{2, 4, 2, 1, true},  // and two addresses
		{2, 4, 3, 1, false}, // three addresses: two held Ps at most
		{2, 2, 1, 1, true},  // GOMAXPROCS=2
		{2, 1, 1, 1, false}, // GOMAXPROCS=1: no P to spare
		{32, 64, 3, 10, true},
		{8, 4, 1, 2, true}, // GOMAXPROCS below the CPUs
	} {
		perAddr, holdP := realtimeReaders(c.cpus, c.procs, c.addrs)
		if perAddr != c.perAddr || holdP != c.holdP {
			t.Errorf("%d CPUs, %d Ps, %d addresses: %d readers each, keep P %v; want %d, %v",
				c.cpus, c.procs, c.addrs, perAddr, holdP, c.perAddr, c.holdP)
		}
		if holdP && perAddr*c.addrs > c.procs/2 {
			t.Errorf("%d CPUs, %d Ps, %d addresses: %d readers keep a P, more than half", c.cpus, c.procs, c.addrs, perAddr*c.addrs)
		}
	}
}

package sip

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// ourGoroutines lists the stacks of goroutines running code of this
// package outside its tests: a frame of sip. in a file that is not a
// _test.go (the goroutine running a test, and test phones that only call
// sipgo, are not ours).
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner") {
			continue
		}
		lines := strings.Split(g, "\n")
		for i := 1; i+1 < len(lines); i++ {
			fn, file := lines[i], strings.TrimSpace(lines[i+1])
			if strings.Contains(fn, "github.com/partyline/partyline/sip.") && !strings.HasPrefix(fn, "\t") &&
				!strings.Contains(file, "_test.go:") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// noLeaks fails t when goroutines of the server are still running once
// it has stopped, after giving them a moment (bounded) to end.
func noLeaks(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := ourGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines of the server still running after it stopped; the first:\n%s", len(left), left[0])
			return
		}
		time.Sleep(20 * time.Millisecond) // polled: goroutines end without an event to await
	}
}

// TestLeakCheckSeesALeak: the check finds a goroutine of the server left
// running (a sweep nobody stops), and not once it ends.
func TestLeakCheckSeesALeak(t *testing.T) {
	e := newEnv(t, nil)
	e.stop() // the server's own sweep ends; the check runs and finds nothing
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.srv.sweep(ctx); close(done) }()
	found := false
	for range 1000 {
		for _, g := range ourGoroutines() {
			found = found || strings.Contains(g, "sip.(*Server).sweep")
		}
		if found {
			break
		}
		time.Sleep(time.Millisecond) // until the goroutine has started
	}
	cancel()
	<-done
	if !found {
		t.Fatal("a running sweep was not seen as ours")
	}
	if left := ourGoroutines(); len(left) != 0 {
		t.Fatalf("still seen after it ended:\n%s", left[0])
	}
}

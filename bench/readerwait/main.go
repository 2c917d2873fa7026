// Command readerwait reads a Go runtime trace of the server (fork3.sh's
// GOTRACE, from `serve --pprof`'s /debug/pprof/trace) and reports how long
// the goroutines reading the UDP sockets waited for a P: each time one was
// runnable and not running, what it was doing before (a system call, and
// which; blocked; preempted), the longest waits with their time in the
// trace, and the GC mark phases, which is when most of the long ones
// happen (BENCHMARKS.md, the fan-out's fourth look).
//
// Usage: go run . TRACE [N]   (N: the longest waits to list, 30)
//
// Its own module, so that golang.org/x/exp stays out of the server's.
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// wait is one stretch of a reader being runnable.
type wait struct {
	at    trace.Time
	d     time.Duration
	g     trace.GoID
	cause string
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: readerwait TRACE [N]")
		os.Exit(2)
	}
	n := 30
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "readerwait:", err)
		os.Exit(1)
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "readerwait:", err)
		os.Exit(1)
	}
	readers := map[trace.GoID]bool{}
	since := map[trace.GoID]wait{}     // runnable since, and why
	syscall := map[trace.GoID]string{} // the system call a goroutine is in
	blocked := map[trace.GoID]string{} // where a goroutine blocked
	var waits []wait
	var t0 trace.Time
	var marks []string
	for {
		ev, err := r.ReadEvent()
		if err != nil {
			break // io.EOF, or a trace cut short: report what was read
		}
		if t0 == 0 {
			t0 = ev.Time()
		}
		at := func(t trace.Time) float64 { return float64(t-t0) / 1e9 }
		switch ev.Kind() {
		case trace.EventRangeBegin, trace.EventRangeEnd:
			if rg := ev.Range(); strings.Contains(rg.Name, "mark phase") {
				if ev.Kind() == trace.EventRangeBegin {
					marks = append(marks, fmt.Sprintf("GC mark from %.3f s", at(ev.Time())))
				} else if len(marks) > 0 {
					marks[len(marks)-1] += fmt.Sprintf(" to %.3f s", at(ev.Time()))
				}
			}
			continue
		case trace.EventStateTransition:
		default:
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		g := st.Resource.Goroutine()
		from, to := st.Goroutine()
		if from == trace.GoRunning && !readers[g] && reads(st.Stack) {
			readers[g] = true
		}
		switch to {
		case trace.GoSyscall:
			syscall[g] = call(st.Stack)
		case trace.GoWaiting:
			blocked[g] = st.Reason + " in " + blocker(st.Stack)
		case trace.GoRunnable:
			cause := from.String()
			switch {
			case from == trace.GoSyscall:
				cause = "leaving " + syscall[g]
			case from == trace.GoWaiting:
				cause = "waiting (" + blocked[g] + ")"
			case st.Reason != "":
				cause += " (" + st.Reason + ")"
			}
			since[g] = wait{at: ev.Time(), g: g, cause: cause}
		case trace.GoRunning:
			if w, ok := since[g]; ok {
				w.d = ev.Time().Sub(w.at)
				waits = append(waits, w)
				delete(since, g)
			}
		}
	}
	var mine []wait
	var total time.Duration
	byCause := map[string][]time.Duration{}
	for _, w := range waits {
		if readers[w.g] {
			mine = append(mine, w)
			total += w.d
			byCause[w.cause] = append(byCause[w.cause], w.d)
		}
	}
	fmt.Printf("%d reading goroutines; runnable %d times, %.1f ms in all\n", len(readers), len(mine), float64(total)/1e6)
	causes := make([]string, 0, len(byCause))
	for c := range byCause {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	for _, c := range causes {
		ds := byCause[c]
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		fmt.Printf("  %-28s %7d times, %8.1f ms; p50 %v p99 %v max %v\n", c, len(ds), float64(sum)/1e6,
			ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1])
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].d > mine[j].d })
	fmt.Printf("the %d longest:\n", min(n, len(mine)))
	for _, w := range mine[:min(n, len(mine))] {
		fmt.Printf("  at %.4f s goroutine %d waited %v, %s\n", float64(w.at-t0)/1e9, w.g, w.d.Round(time.Microsecond), w.cause)
	}
	fmt.Println(strings.Join(marks, "\n"))
}

// blocker names where a goroutine blocked: its innermost frame outside
// the runtime and sync packages.
func blocker(s trace.Stack) string {
	for f := range s.Frames() {
		fn := f.Func
		if strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "sync.") || strings.HasPrefix(fn, "internal/sync.") {
			continue
		}
		if i := strings.LastIndex(fn, "/"); i >= 0 {
			fn = fn[i+1:]
		}
		return fn
	}
	return "?"
}

// reads: the stack is a socket's reading loop.
func reads(s trace.Stack) bool {
	for f := range s.Frames() {
		if strings.Contains(f.Func, "readListenerConnection") {
			return true
		}
	}
	return false
}

// call names the system call a stack is in: its innermost frame outside
// the syscall packages.
func call(s trace.Stack) string {
	for f := range s.Frames() {
		fn := f.Func
		if strings.HasPrefix(fn, "syscall.") || strings.HasPrefix(fn, "internal/runtime/syscall") || strings.HasPrefix(fn, "golang.org/x/sys/unix.") && strings.Contains(fn, ".ppoll") {
			continue
		}
		if i := strings.LastIndex(fn, "/"); i >= 0 {
			fn = fn[i+1:]
		}
		return fn
	}
	return "?"
}

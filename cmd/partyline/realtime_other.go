//go:build !linux

package main

import "fmt"

// setRealtime is Linux-only (sched_setattr(2)).
func setRealtime(prio int) error {
	return fmt.Errorf("--realtime %d: real-time scheduling is supported on Linux only; leave --realtime unset", prio)
}

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setRealtime puts every thread of this process under SCHED_RR at prio
// (1-99), as Asterisk's -p, FreeSWITCH's -rp and Kamailio's rt_policy do:
// a SIP packet then wakes the server at once instead of waiting for other
// programs' time slices on a busy machine. Threads the Go runtime starts
// later inherit the policy from the thread that starts them (clone(2)
// without SCHED_RESET_ON_FORK), so setting those that exist is enough;
// the passes repeat until one finds every thread set, for the ones started
// while the first pass ran. The kernel still keeps 5 % of each second for
// other programs (sched_rt_runtime_us), so a runaway server cannot lock
// the machine up.
func setRealtime(prio int) error {
	if prio < 1 || prio > 99 {
		return fmt.Errorf("--realtime %d: give a priority from 1 to 99 (0 leaves the server under the normal scheduler)", prio)
	}
	for pass := 0; pass < 10; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("--realtime: listing the server's threads: %w", err)
		}
		changed := 0
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil {
				continue
			}
			if cur, err := unix.SchedGetAttr(tid, 0); err == nil && cur.Policy == unix.SCHED_RR && cur.Priority == uint32(prio) {
				continue
			}
			err = unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_RR, Priority: uint32(prio)}, 0)
			switch {
			case errors.Is(err, unix.ESRCH):
				// The thread ended meanwhile.
			case errors.Is(err, unix.EPERM):
				return fmt.Errorf("--realtime %d: not permitted: run the server as root, give it CAP_SYS_NICE (setcap cap_sys_nice+ep, or systemd AmbientCapabilities=CAP_SYS_NICE), or raise its real-time priority limit (ulimit -r %d, systemd LimitRTPRIO=%d)", prio, prio, prio)
			case err != nil:
				return fmt.Errorf("--realtime %d: %w", prio, err)
			default:
				changed++
			}
		}
		if changed == 0 {
			return nil
		}
	}
	return errors.New("--realtime: the server kept starting threads faster than they could be set; try again")
}

// Package testproc names a test's processes by pid and start time, so
// that a test never signals a process that merely got one of its pids.
//
// pid_max is 32768 on the machines make test runs on, and a run spawns
// thousands of processes (handlers, their shells, servers), so a pid is
// reused within minutes. A cleanup that SIGKILLs "the handler's pid"
// after the handler has exited kills whatever has that pid by then:
// another test's redis-server or sentinel.
package testproc

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Proc is one process: its pid and its start time (clock ticks since
// boot, /proc/<pid>/stat field 22).
type Proc struct {
	PID   int
	start string
}

// Find names the process that has pid now; false when there is none.
func Find(pid int) (Proc, bool) {
	st, _, ok := stat(pid)
	return Proc{PID: pid, start: st}, ok
}

// Running reports whether the same process still runs (not a zombie,
// and not another process with its pid).
func (p Proc) Running() bool {
	st, state, ok := stat(p.PID)
	return ok && p.start != "" && st == p.start && state != "Z"
}

// Alive reports whether some process (not a zombie) has pid now.
func Alive(pid int) bool {
	_, state, ok := stat(pid)
	return ok && state != "Z"
}

// Kill sends SIGKILL to the process if it still runs; it reports
// whether it sent it.
func (p Proc) Kill() bool {
	return p.Running() && syscall.Kill(p.PID, syscall.SIGKILL) == nil
}

// stat reads the start time and state of pid.
func stat(pid int) (start, state string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", "", false
	}
	fs := strings.Fields(s[i+1:])
	if len(fs) < 20 {
		return "", "", false
	}
	return fs[19], fs[0], true // after the comm: state is field 3, starttime 22
}

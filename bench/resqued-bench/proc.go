package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Every process the bench starts is tracked, so that an interrupt or a
// failure kills exactly those (and nothing else) before exiting.
var (
	trackedMu sync.Mutex
	tracked   = map[*exec.Cmd]bool{}
)

func track(c *exec.Cmd)   { trackedMu.Lock(); tracked[c] = true; trackedMu.Unlock() }
func untrack(c *exec.Cmd) { trackedMu.Lock(); delete(tracked, c); trackedMu.Unlock() }

func killTracked() {
	trackedMu.Lock()
	defer trackedMu.Unlock()
	for c := range tracked {
		if c.Process != nil {
			_ = c.Process.Kill()
		}
	}
}

// cleanEnv is this process's environment without the variables resqued
// reads, so that the measured daemon sees only what the bench sets.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "RESQUE"), name == "COUNT", name == "QUEUES", name == "QUEUE",
			name == "INTERVAL", name == "VERBOSE", name == "VVERBOSE", name == "LOGGING", name == "PIDFILE",
			name == "REDIS_URL", name == "REDIS_BACKEND", name == "REDIS_BACKEND_DB", name == "PREFIX":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// daemon is a running resqued.
type daemon struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
	err    error
}

// startDaemon runs resqued against url on the bench queue with COUNT=count.
// interval "" keeps resqued's default.
func startDaemon(bin, url, handlers string, count int, interval string, extraEnv ...string) (*daemon, error) {
	args := []string{"--redis", url, "--handlers", handlers, "--queues", benchQueue}
	if interval != "" {
		args = append(args, "--interval", interval)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv(append([]string{"COUNT=" + strconv.Itoa(count)}, extraEnv...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	track(cmd)
	d := &daemon{cmd: cmd, stderr: &stderr, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); untrack(cmd); close(d.done) }()
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// wait waits for the daemon to exit, killing it after within.
func (d *daemon) wait(within time.Duration) error {
	select {
	case <-d.done:
	case <-time.After(within):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("resqued did not exit within %s; output:\n%s", within, d.stderr.String())
	}
	if d.err != nil {
		return fmt.Errorf("resqued: %v; output:\n%s", d.err, d.stderr.String())
	}
	return nil
}

// quit sends QUIT and waits for the daemon to exit.
func (d *daemon) quit() error {
	_ = d.cmd.Process.Signal(syscall.SIGQUIT)
	return d.wait(30 * time.Second)
}

// children returns the pids of pid's child processes, sorted. A Go
// program forks from any of its threads, so every task is read.
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	sort.Ints(out)
	return out
}

// statusKiB reads a "Vm...:" field (KiB) of /proc/<pid>/status.
func statusKiB(pid int, field string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// pssKiB is pid's proportional set size: its RSS with each shared page
// (the resqued binary's text, mapped by the supervisor and every worker)
// divided among the processes that map it.
func pssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no Pss in /proc/%d/smaps_rollup", pid)
}

// cpuTicks is utime+stime of pid (all its threads), in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after its ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ")": state is field 3, utime 14 and stime 15 (1-based).
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return u + s, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// onCPU is the time pid's threads have spent on a CPU so far, from
// /proc/<pid>/task/*/schedstat (nanoseconds; finer than utime+stime's
// clock ticks). Threads that already exited are not counted.
func onCPU(pid int) (time.Duration, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("no schedstat for pid %d", pid)
	}
	var total time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		if fs := strings.Fields(string(b)); len(fs) > 0 {
			n, _ := strconv.ParseInt(fs[0], 10, 64)
			total += time.Duration(n)
		}
	}
	return total, nil
}

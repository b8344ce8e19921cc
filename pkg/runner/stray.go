package runner

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// KillStray kills, with SIGKILL to their whole process groups, the
// handler processes (and everything they started that kept their
// environment) of worker, a worker known to be dead. Each handler is
// started in its own process group with RESQUE_WORKER=<worker> in its
// environment; when its worker is killed with -9, PDEATHSIG stops only
// the handler itself, and its children would run on unsupervised. It
// finds them through /proc (on hosts without /proc it finds nothing)
// and returns how many processes matched. Processes of this process's
// own group are never signalled.
func KillStray(worker string) (int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	marker := []byte("RESQUE_WORKER=" + worker)
	self, ownGroup := os.Getpid(), syscall.Getpgrp()
	groups := map[int]bool{}
	n := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(d + "/environ")
		if err != nil || !hasEnvEntry(env, marker) {
			continue
		}
		n++
		pgid, err := syscall.Getpgid(pid)
		if err != nil {
			continue // gone meanwhile
		}
		if pgid == ownGroup || pgid <= 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			continue
		}
		groups[pgid] = true
	}
	for pgid := range groups {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return n, nil
}

// hasEnvEntry reports whether the NUL-separated environment block env
// holds exactly the entry e.
func hasEnvEntry(env, e []byte) bool {
	for len(env) > 0 {
		i := bytes.IndexByte(env, 0)
		if i < 0 {
			i = len(env)
		}
		if bytes.Equal(env[:i], e) {
			return true
		}
		if i == len(env) {
			break
		}
		env = env[i+1:]
	}
	return false
}

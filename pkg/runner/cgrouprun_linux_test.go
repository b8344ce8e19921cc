package runner

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestRun_CgroupLimits runs jobs through Config.Cgroup end to end: a job
// allocating past its memory limit fails as the memory limit with its
// peak, one forking past its process limit as the process limit, a
// plain one succeeds, and none leaves its job cgroup behind.
func TestRun_CgroupLimits(t *testing.T) {
	dir := needCgroup(t, "memory", "pids")
	r := newTestRunner(t, Config{Cgroup: dir})
	writeScript(t, r.Dir(), "Hog", "#!/bin/sh\nx=$(head -c 67108864 /dev/zero | tr '\\0' a)\necho survived\n")
	writeScript(t, r.Dir(), "Forker", "#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8; do sleep 1000 & done\necho all forked >&2\nwait\n")
	writeScript(t, r.Dir(), "Fine", "#!/bin/sh\necho fine\n")

	ctx := context.Background()
	_, err := r.Run(ctx, Job{Class: "Hog", Limits: &Limits{Memory: 16 << 20}})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Limit != LimitMemory || !strings.HasPrefix(ee.Error(), "handler Hog was killed: memory limit 16 MiB (peak ") {
		t.Errorf("Hog: %v, want killed at the memory limit", err)
	}
	_, err = r.Run(ctx, Job{Class: "Forker", Limits: &Limits{Procs: 4}})
	if !errors.As(err, &ee) || ee.Limit != LimitProcs {
		t.Errorf("Forker: %v, want failed at the process limit", err)
	}
	if _, err := r.Run(ctx, Job{Class: "Fine"}); err != nil {
		t.Errorf("Fine: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "job-*"))
	if len(left) > 0 {
		t.Errorf("job cgroups left behind: %q", left)
	}
}

// TestRun_CgroupKillsEscapees: with Config.Cgroup, a process that left
// the handler's process group (setsid) still ends with the job. Runs on
// any writable cgroup v2, controllers or not: openCgroupNeeding stands in
// for Config.Cgroup's memory and pids check where they are missing.
func TestRun_CgroupKillsEscapees(t *testing.T) {
	dir := needCgroup(t)
	root, err := openCgroupNeeding(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := newTestRunner(t, Config{})
	r.groups = func(l Limits) (limitGroup, error) {
		j, err := root.newJob(l)
		if err != nil {
			return nil, err
		}
		return cgroupJob{j}, nil
	}
	pidFile := filepath.Join(t.TempDir(), "escapee")
	writeScript(t, r.Dir(), "Escape", "#!/bin/sh\nsetsid sleep 1000 </dev/null >/dev/null 2>&1 &\necho $! > "+pidFile+"\n")
	if _, err := r.Run(context.Background(), Job{Class: "Escape"}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Run returns once the job's cgroup is empty and removed.
	if state, _, ok := procStat(readPidFile(t, pidFile)); ok && state != 'Z' && state != 'X' {
		t.Errorf("the setsid child outlived its job (state %c)", state)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "job-*")); len(left) > 0 {
		t.Errorf("job cgroups left behind: %q", left)
	}
}

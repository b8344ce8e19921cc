package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// workerPIDs returns the pids of the registered workers, sorted.
func workerPIDs(t *testing.T, srv *redistest.Server) []int {
	t.Helper()
	ids, _ := redis.Strings(srv.Do(t, "SMEMBERS", queue.WorkersKey(ns)), nil)
	var pids []int
	for _, id := range ids {
		if _, pid, _, err := queue.ParseWorkerID(id); err == nil {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// holderPID returns the pid of the worker whose worker:<id> holds a job.
func holderPID(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	ids, _ := redis.Strings(srv.Do(t, "SMEMBERS", queue.WorkersKey(ns)), nil)
	for _, id := range ids {
		if v, _ := redis.String(srv.Do(t, "GET", queue.WorkerKey(ns, id)), nil); v != "" && !strings.Contains(v, `"paused":true`) {
			_, pid, _, _ := queue.ParseWorkerID(id)
			return pid
		}
	}
	return 0
}

// gone reports whether pid has exited (or is a zombie waiting for a
// parent that is not us).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	redistest.Eventually(t, 30*time.Second, func() bool {
		b, err := os.ReadFile(path)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	}, "the handler never wrote its child's pid to %s", path)
	return pid
}

// A handler's children outlived a worker killed with -9: PDEATHSIG
// stops only the handler. The supervisor that reaps the worker (and,
// when the whole daemon was killed, the next daemon that prunes it) kills
// the dead job's process groups.
func TestKilledWorker_HandlerChildrenKilled(t *testing.T) {
	for _, tc := range []struct {
		name  string
		whole bool // kill the whole daemon, not one worker
	}{{"worker", false}, {"daemon", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			dir := t.TempDir()
			pidfile := filepath.Join(t.TempDir(), "child.pid")
			handler(t, dir, "Spawn", `sleep 300 &
echo $! > `+pidfile+`
wait`)
			var d *daemon
			if tc.whole {
				d = startArgs(t, srv, dir, nil, "-vv", "--queues", "q")
			} else {
				d = startArgs(t, srv, dir, []string{"COUNT=2"}, "-vv", "--queues", "q")
			}
			daemons := []*daemon{d}
			push(t, srv, "q", `{"class":"Spawn","args":[]}`)
			child := readPID(t, pidfile)
			if tc.whole {
				_ = d.cmd.Process.Signal(syscall.SIGKILL)
				_ = d.wait(10 * time.Second)
				if gone(child) {
					t.Fatal("the handler's child died with the daemon: nothing to test")
				}
				daemons = append(daemons, start(t, srv, dir, "--queues", "q"))
			} else {
				var pid int
				redistest.Eventually(t, 10*time.Second, func() bool { pid = holderPID(t, srv); return pid > 0 }, "no worker holds the job")
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			redistest.Eventually(t, 30*time.Second, func() bool { return gone(child) },
				"the handler's child %d still runs after its worker was killed", child)
			// The requeued job runs again; TERM stops it rather than wait.
			for _, d := range daemons {
				_ = d.cmd.Process.Signal(syscall.SIGTERM)
			}
		})
	}
}

// A handler that kills its own worker was requeued on every prune,
// forever. After --max-redeliveries (3) requeues it fails as
// Resque::DirtyExit, having run exactly 4 times.
func TestPoisonJob_FailsAfterMaxRedeliveries(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	runs := filepath.Join(t.TempDir(), "runs.log")
	handler(t, dir, "Killer", `echo run >> `+runs+`
kill -9 $PPID
sleep 30`)
	handler(t, dir, "Fine", `echo fine >> `+runs)
	startEnv(t, srv, dir, []string{"COUNT=2"}, "--queues", "q")
	c := queue.New(srv.Pool(t), ns)
	ctx := context.Background()
	p, _ := queue.Encode("Killer", []byte(`[]`), "tok-poison")
	if err := c.Enqueue(ctx, "q", p, queue.EnqueueOptions{Track: true, ID: "tok-poison"}); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, 90*time.Second, func() bool { return len(failures(t, srv)) == 1 }, "the poison job never failed")
	f := failures(t, srv)[0]
	if f.Exception != "Resque::DirtyExit" || !strings.Contains(f.Error, "died 4 times") || !strings.Contains(f.Error, "--max-redeliveries 3") {
		t.Errorf("failure = %s: %s", f.Exception, f.Error)
	}
	// The daemon keeps serving.
	push(t, srv, "q", `{"class":"Fine","args":[]}`)
	redistest.Eventually(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(runs)
		return strings.Contains(string(b), "fine")
	}, "the daemon stopped serving after the poison job")
	b, _ := os.ReadFile(runs)
	if n := strings.Count(string(b), "run\n"); n != 4 {
		t.Errorf("the poison job ran %d times, want 4 (1 + 3 redeliveries)", n)
	}
	s, err := status.New(srv.Pool(t), ns).Get(ctx, "tok-poison")
	if err != nil || s.Code != status.Failed {
		t.Errorf("status = %v %v, want failed", s.Code, err)
	}
}

// kill -9 of a COUNT=2 daemon whose worker held the prune lock: a new
// daemon started after it had still not pruned the ghosts 15 s later
// (the lock lasts 60 s, the next periodic prune is 5 minutes away). It
// must take over a dead holder's lock and prune them at start.
func TestCrashStorm_GhostsPrunedAtStart(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Noop", `true`)
	d := startEnv(t, srv, dir, []string{"COUNT=2"}, "--queues", "q")
	redistest.Eventually(t, 20*time.Second, func() bool { return len(workerPIDs(t, srv)) == 2 }, "two workers registered")
	old := workerPIDs(t, srv)
	// One worker was pruning when the crash came.
	host, _ := os.Hostname()
	srv.Do(t, "SET", queue.PruneLockKey(ns), queue.WorkerID(host, old[0], []string{"q"}), "EX", 60)
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	for _, pid := range old {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = d.wait(10 * time.Second)
	redistest.Eventually(t, 10*time.Second, func() bool { return gone(old[0]) && gone(old[1]) }, "old workers gone")

	startEnv(t, srv, dir, []string{"COUNT=2"}, "--queues", "q")
	redistest.Eventually(t, 40*time.Second, func() bool {
		pids := workerPIDs(t, srv)
		if len(pids) != 2 {
			return false
		}
		for _, p := range pids {
			if p == old[0] || p == old[1] {
				return false
			}
		}
		return true
	}, "the dead daemon's workers %v were not pruned (workers now: %v)", old, workerPIDs(t, srv))
}

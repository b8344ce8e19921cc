package e2e

import (
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
	"github.com/resqued/resqued/internal/testproc"
	"github.com/resqued/resqued/pkg/queue"
)

// outWithin bounds every wait in the outage tests.
const outWithin = 30 * time.Second

func outWaitFile(t *testing.T, path string) {
	t.Helper()
	redistest.Eventually(t, outWithin, func() bool { _, err := os.Stat(path); return err == nil }, "%s never appeared", path)
}

func outWorkerIDs(t *testing.T, srv *redistest.Server) []string {
	t.Helper()
	ids, _ := redis.Strings(srv.Do(t, "SMEMBERS", queue.WorkersKey(ns)), nil)
	sort.Strings(ids)
	return ids
}

func outRunning(d *daemon) bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func outExists(t *testing.T, srv *redistest.Server, key string) bool {
	t.Helper()
	n, _ := redis.Int(srv.Do(t, "EXISTS", key), nil)
	return n == 1
}

// TestOutage_RedisRestart: Redis goes away while a job runs and the job
// finishes meanwhile; once Redis is back (its data kept by AOF) the
// outcome is recorded exactly once and the daemon carries on.
func TestOutage_RedisRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Args("--appendonly", "yes", "--appendfsync", "always"))
	dir, marks := t.TempDir(), t.TempDir()
	gate := filepath.Join(marks, "gate")
	handler(t, dir, "Gated", `echo run >> "`+marks+`/gated"; while [ ! -e "`+gate+`" ]; do sleep 0.02; done; touch "`+marks+`/gated.done"`)
	handler(t, dir, "After", `echo run >> "`+marks+`/after"`)
	push(t, srv, "o", `{"class":"Gated","args":[]}`)
	d := start(t, srv, dir, "--queues", "o", "--interval", "1")
	outWaitFile(t, filepath.Join(marks, "gated"))
	ids := outWorkerIDs(t, srv)
	if len(ids) != 1 {
		t.Fatalf("workers = %v", ids)
	}
	id := ids[0]
	if rec, _ := redis.String(srv.Do(t, "GET", queue.WorkerKey(ns, id)), nil); !strings.Contains(rec, `"class":"Gated"`) {
		t.Fatalf("worker:%s = %q, want the running job", id, rec)
	}

	srv.Stop()
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	outWaitFile(t, filepath.Join(marks, "gated.done"))
	// The outcome cannot be recorded: the worker says so and backs off.
	redistest.Eventually(t, outWithin, func() bool { return strings.Contains(d.out.String(), "redis unavailable") }, "no \"redis unavailable\" in the log")
	// Keep Redis away until the worker's backoff is at its 1 s cap, as in
	// a real restart, so the resume time below is the worst case.
	redistest.Eventually(t, outWithin, func() bool {
		_, msgs := loopLines(d.out.String(), "resqued.worker")
		for _, m := range msgs {
			if strings.HasPrefix(m, "redis still unavailable") && strings.Contains(m, "backoff=1s") {
				return true
			}
		}
		return false
	}, "backoff never reached 1 s")
	if !outRunning(d) {
		t.Fatalf("daemon exited while Redis was down: %v", d.err)
	}

	srv.Restart()
	restarted := time.Now()
	redistest.Eventually(t, outWithin, func() bool {
		return getInt(t, srv, queue.StatKey(ns, "processed")) == 1 && !outExists(t, srv, queue.WorkerKey(ns, id))
	}, "outcome of the job finished during the outage never recorded (processed %d)", getInt(t, srv, queue.StatKey(ns, "processed")))
	t.Logf("outcome recorded %s after Redis came back", time.Since(restarted).Round(time.Millisecond))
	if !outRunning(d) {
		t.Fatalf("daemon exited: %v", d.err)
	}
	if ok, _ := redis.Bool(srv.Do(t, "SISMEMBER", queue.WorkersKey(ns), id), nil); !ok {
		t.Errorf("worker %s not registered after the restart (workers %v)", id, outWorkerIDs(t, srv))
	}

	pushed := time.Now()
	push(t, srv, "o", `{"class":"After","args":[]}`)
	outWaitFile(t, filepath.Join(marks, "after"))
	resume := time.Since(restarted)
	t.Logf("new job ran %s after Redis came back (%s after it was pushed)", resume.Round(time.Millisecond), time.Since(pushed).Round(time.Millisecond))
	if resume > 15*time.Second {
		t.Errorf("took %s after the restart to run a new job", resume)
	}
	waitProcessed(t, srv, 2)
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 0 {
		t.Errorf("stat:failed = %d: %+v", n, failures(t, srv))
	}
	for _, f := range []string{"gated", "after"} {
		b, _ := os.ReadFile(filepath.Join(marks, f))
		if string(b) != "run\n" {
			t.Errorf("%s ran %d times, want once", f, strings.Count(string(b), "run"))
		}
	}
	out := d.out.String()
	_, msgs := loopLines(out, "resqued.worker")
	if n := strings.Count(strings.Join(msgs, "\n"), "redis unavailable"); n != 1 {
		t.Errorf("the worker logged \"redis unavailable\" %d times, want once for the one outage", n)
	}
	if !strings.Contains(out, "redis reachable again") {
		t.Error("no \"redis reachable again\" in the log")
	}
	if !outRunning(d) {
		t.Fatalf("daemon exited: %v", d.err)
	}
}

// TestOutage_RedisDownAtStart: a daemon started while Redis is down
// waits for it instead of exiting, then registers and works.
func TestOutage_RedisDownAtStart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Stop()
	dir, marks := t.TempDir(), t.TempDir()
	handler(t, dir, "Ok", `echo run >> "`+marks+`/ok"`)
	d := start(t, srv, dir, "--queues", "d", "--interval", "1")
	redistest.Eventually(t, outWithin, func() bool {
		return strings.Contains(d.out.String(), "redis unavailable") || !outRunning(d)
	}, "no \"redis unavailable\" in the log")
	// The first attempts have been made (backoff 100 ms, then 200 ms):
	// an exit on them would show by the time the log has said so.
	redistest.Eventually(t, outWithin, func() bool {
		return strings.Count(d.out.String(), "redis still unavailable") >= 2 || !outRunning(d)
	}, "no further attempts logged")
	if !outRunning(d) {
		t.Fatalf("daemon exited while Redis was down: %v", d.err)
	}

	srv.Restart()
	restarted := time.Now()
	redistest.Eventually(t, outWithin, func() bool { return len(outWorkerIDs(t, srv)) == 1 }, "worker never registered after Redis came up")
	t.Logf("registered %s after Redis came up", time.Since(restarted).Round(time.Millisecond))
	push(t, srv, "d", `{"class":"Ok","args":[]}`)
	waitProcessed(t, srv, 1)
	if b, _ := os.ReadFile(filepath.Join(marks, "ok")); string(b) != "run\n" {
		t.Errorf("job ran %q, want once", b)
	}
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 0 {
		t.Errorf("stat:failed = %d", n)
	}
	if !strings.Contains(d.out.String(), "redis reachable again") {
		t.Error("no \"redis reachable again\" in the log")
	}
}

// TestOutage_KillDuringJobRequeues: with reliable fetch a job whose
// worker is killed with -9 stays in worker:<id>; the next worker on the
// same queues requeues it (the default --on-orphan) and runs it once.
func TestOutage_KillDuringJobRequeues(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	hang, fine, marks := t.TempDir(), t.TempDir(), t.TempDir()
	handler(t, hang, "Job", `echo $$ > "`+marks+`/started"; exec sleep 1000`)
	handler(t, fine, "Job", `cat >> "`+marks+`/ran"; echo >> "`+marks+`/ran"`)
	payload := `{"class":"Job","args":["k"],"id":"killme"}`
	push(t, srv, "k", payload)

	first := start(t, srv, hang, "--queues", "k")
	started := filepath.Join(marks, "started")
	redistest.Eventually(t, outWithin, func() bool {
		b, _ := os.ReadFile(started)
		return strings.HasSuffix(string(b), "\n")
	}, "job never started")
	// The killed daemon cannot stop its handler: do it for it.
	if pid, err := strconv.Atoi(strings.TrimSpace(string(outRead(t, started)))); err == nil {
		// Only if it is still that process: its pid may be reused by then.
		if p, ok := testproc.Find(pid); ok {
			t.Cleanup(func() { p.Kill() })
		}
	}
	ghosts := outWorkerIDs(t, srv)
	if len(ghosts) != 1 {
		t.Fatalf("workers = %v", ghosts)
	}
	ghost := ghosts[0]
	first.signal(syscall.SIGKILL)
	first.wait(10 * time.Second)

	rec, _ := redis.String(srv.Do(t, "GET", queue.WorkerKey(ns, ghost)), nil)
	if !strings.Contains(rec, payload) {
		t.Fatalf("worker:%s = %q, want it to hold %s", ghost, rec, payload)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "k")), nil); n != 0 {
		t.Errorf("LLEN k = %d while the job is held by the dead worker", n)
	}

	second := start(t, srv, fine, "--queues", "k")
	ran := filepath.Join(marks, "ran")
	outWaitFile(t, ran)
	waitProcessed(t, srv, 1)
	redistest.Eventually(t, outWithin, func() bool {
		ids := outWorkerIDs(t, srv)
		return len(ids) == 1 && ids[0] != ghost
	}, "ghost %s not replaced (workers %v)", ghost, outWorkerIDs(t, srv))
	if got := string(outRead(t, ran)); got != `["k"]`+"\n" {
		t.Errorf("requeued job ran with %q, want [\"k\"] once", got)
	}
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 0 {
		t.Errorf("stat:failed = %d: %+v", n, failures(t, srv))
	}
	if n := getInt(t, srv, queue.StatKey(ns, "processed")); n != 1 {
		t.Errorf("stat:processed = %d, want 1", n)
	}
	for _, k := range []string{queue.WorkerKey(ns, ghost), queue.WorkerStartedKey(ns, ghost)} {
		if outExists(t, srv, k) {
			t.Errorf("%s left after the ghost was pruned", k)
		}
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "k")), nil); n != 0 {
		t.Errorf("LLEN k = %d after the requeued job ran", n)
	}
	if !outRunning(second) {
		t.Fatalf("second daemon exited: %v", second.err)
	}
}

func outRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

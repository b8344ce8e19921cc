package worker_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/worker"
)

// These tests drive a Worker through its public API (New, Run, Pause,
// Resume, Shutdown) and a Pruner through Prune, and check what Resque
// clients see: Redis state in Resque's key layout, and what real handler
// scripts recorded.

// enqueue pushes a job the way a Resque client does.
func (e *env) enqueue(t *testing.T, q, class, args string) []byte {
	t.Helper()
	p, err := queue.Encode(class, []byte(args), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.q.Enqueue(context.Background(), q, p, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) failures(t *testing.T) []queue.Failure {
	t.Helper()
	fs, err := e.q.Failures(context.Background(), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func (e *env) llen(t *testing.T, key string) int {
	t.Helper()
	n, err := redis.Int(e.srv.Do(t, "LLEN", key), nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// exists reports whether file exists.
func exists(file string) bool {
	_, err := os.Stat(file)
	return err == nil
}

// TestWorker_Run: a job pushed while the worker waits is run by its
// handler and recorded as processed; a handler that fails is recorded in
// the failed list with Resque's fields; Shutdown unregisters.
func TestWorker_Run(t *testing.T) {
	t.Parallel()
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		w := start(t, e.config(t, 201))
		redistest.Eventually(t, 10*time.Second, func() bool { return e.registered(w.w.ID()) }, "worker registered")
		e.enqueue(t, "q", "Log", `["hello",1]`)
		redistest.Eventually(t, 10*time.Second, func() bool { return len(e.runLines()) == 1 }, "job never ran")
		if got, want := e.runLines()[0], `Log_["hello",1]`; got != want {
			t.Errorf("handler ran with %q, want %q", got, want)
		}
		redistest.Eventually(t, 10*time.Second, func() bool { return e.get(t, queue.StatKey(e.ns, "processed")) == "1" },
			"stat:processed = %q, want 1", e.get(t, queue.StatKey(e.ns, "processed")))
		if got := e.get(t, queue.StatKey(e.ns, "failed")); got != "" && got != "0" {
			t.Errorf("stat:failed = %q", got)
		}
		if fs := e.failures(t); len(fs) != 0 {
			t.Errorf("failures: %+v", fs)
		}
		if n := e.llen(t, queue.QueueKey(e.ns, "q")); n != 0 {
			t.Errorf("queue still holds %d jobs", n)
		}
		w.w.Shutdown()
		if err := w.wait(t, 20*time.Second); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if e.registered(w.w.ID()) {
			t.Error("still registered after Shutdown")
		}
		if v := e.get(t, queue.WorkerKey(e.ns, w.w.ID())); v != "" {
			t.Errorf("worker:<id> left behind: %s", v)
		}
	})
	t.Run("ErrHandlerExit", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.handler(t, "Fail", `echo "first line" >&2; echo "boom at step 2" >&2; exit 3`)
		payload := e.enqueue(t, "q", "Fail", `["x"]`)
		cfg := e.config(t, 202)
		cfg.Interval = -1 // drain, then return
		w, err := worker.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now().Add(-time.Second)
		if err := w.Run(context.Background()); err != nil {
			t.Fatalf("Run = %v", err)
		}
		fs := e.failures(t)
		if len(fs) != 1 {
			t.Fatalf("failures = %+v, want 1", fs)
		}
		f := fs[0]
		if f.Exception != worker.ExcHandlerFailed {
			t.Errorf("exception %q, want %q", f.Exception, worker.ExcHandlerFailed)
		}
		if f.Error != "handler Fail exited with status 3" {
			t.Errorf("error %q", f.Error)
		}
		if got, want := strings.Join(f.Backtrace, "|"), "first line|boom at step 2"; got != want {
			t.Errorf("backtrace %q, want the stderr tail %q", f.Backtrace, want)
		}
		if f.Queue != "q" || f.Worker != w.ID() {
			t.Errorf("queue %q worker %q, want q and %q", f.Queue, f.Worker, w.ID())
		}
		var got, want map[string]any
		if err := json.Unmarshal(f.Payload, &got); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(payload, &want)
		if got["class"] != want["class"] || len(got["args"].([]any)) != 1 || got["args"].([]any)[0] != "x" {
			t.Errorf("payload %s, want %s", f.Payload, payload)
		}
		at, err := time.Parse(queue.FailedAtFormat, f.FailedAt)
		if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("failed_at %q (%v): want now", f.FailedAt, err)
		}
		if got := e.get(t, queue.StatKey(e.ns, "failed")); got != "1" {
			t.Errorf("stat:failed = %q, want 1", got)
		}
		if got := e.get(t, queue.StatKey(e.ns, "processed")); got != "1" {
			t.Errorf("stat:processed = %q, want 1: Resque counts failed jobs as processed", got)
		}
	})
}

// TestWorker_PauseResume: a paused worker takes no job (another worker
// gets it); resumed, it takes jobs again.
func TestWorker_PauseResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.handler(t, "Who", `echo "$RESQUE_WORKER" >> "$RUNS"`)
	var titles = make(chan string, 64)
	cfg := e.config(t, 211)
	cfg.SetTitle = func(s string) {
		select {
		case titles <- s:
		default:
		}
	}
	a := start(t, cfg)
	redistest.Eventually(t, 10*time.Second, func() bool { return e.registered(a.w.ID()) }, "worker registered")
	a.w.Pause()
	redistest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(e.get(t, queue.WorkerKey(e.ns, a.w.ID())), `"paused":true`)
	}, "paused marker never written")
	e.enqueue(t, "q", "Who", `[1]`)
	// Another worker on the same queue takes it: the paused one did not.
	b := start(t, e.config(t, 212))
	redistest.Eventually(t, 10*time.Second, func() bool { return len(e.runLines()) == 1 }, "job never ran")
	if got := e.runLines()[0]; got != b.w.ID() {
		t.Errorf("job ran on %s, want the unpaused %s", got, b.w.ID())
	}
	b.w.Shutdown()
	if err := b.wait(t, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	a.w.Resume()
	e.enqueue(t, "q", "Who", `[2]`)
	redistest.Eventually(t, 10*time.Second, func() bool { return len(e.runLines()) == 2 }, "job never ran after Resume")
	if got := e.runLines()[1]; got != a.w.ID() {
		t.Errorf("job ran on %s, want the resumed %s", got, a.w.ID())
	}
	sawPaused := false
	for len(titles) > 0 {
		if s := <-titles; s == "Paused" {
			sawPaused = true
		}
	}
	if !sawPaused {
		t.Error(`the paused worker never set the title "Paused"`)
	}
}

// TestWorker_ShutdownFinishesJob: Shutdown (QUIT) lets the running job
// finish, recorded as a success, takes no new job, then unregisters.
func TestWorker_ShutdownFinishesJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gate := t.TempDir()
	e.handler(t, "Hold", `touch "`+gate+`/started"; while [ ! -e "`+gate+`/go" ]; do sleep 0.02; done; touch "`+gate+`/finished"`)
	e.enqueue(t, "q", "Hold", `[]`)
	e.enqueue(t, "q", "Log", `["next"]`)
	w := start(t, e.config(t, 221))
	redistest.Eventually(t, 10*time.Second, func() bool { return exists(filepath.Join(gate, "started")) }, "job never started")
	w.w.Shutdown()
	select {
	case <-w.done:
		t.Fatalf("Run returned (%v) while its job was still running", w.err)
	default:
	}
	if !e.registered(w.w.ID()) {
		t.Error("unregistered while its job was still running")
	}
	if err := os.WriteFile(filepath.Join(gate, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.wait(t, 20*time.Second); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !exists(filepath.Join(gate, "finished")) {
		t.Error("the running handler was not let finish")
	}
	if n := len(e.runLines()); n != 0 {
		t.Errorf("a new job ran after Shutdown: %v", e.runLines())
	}
	if got := e.get(t, queue.StatKey(e.ns, "processed")); got != "1" {
		t.Errorf("stat:processed = %q, want 1", got)
	}
	if fs := e.failures(t); len(fs) != 0 {
		t.Errorf("failures: %+v", fs)
	}
	if n := e.llen(t, queue.QueueKey(e.ns, "q")); n != 1 {
		t.Errorf("queue holds %d jobs, want the one not taken", n)
	}
	if e.registered(w.w.ID()) {
		t.Error("still registered after exit")
	}
}

// ghost registers worker id as Ruby Resque would have, running payload
// from queue q, and then never heard from again.
func (e *env) ghost(t *testing.T, id, q string, payload []byte) {
	t.Helper()
	if err := e.q.RegisterWorker(context.Background(), id, time.Now()); err != nil {
		t.Fatal(err)
	}
	rec, err := json.Marshal(queue.Working{Queue: q, RunAt: time.Now().UTC().Format(time.RFC3339), Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Do(t, "SET", queue.WorkerKey(e.ns, id), rec)
}

// TestPruner_Decisions: which registered workers a pruner on "testhost"
// with queues "q" takes for dead.
func TestPruner_Decisions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	old := time.Now().Add(-time.Hour).UTC().Format(queue.HeartbeatFormat)
	for _, tc := range []struct {
		name  string
		id    string
		alive bool   // its pid is a live worker process
		beat  string // heartbeat to set, "" for RegisterWorker's fresh one
		lease bool   // it holds a live lease
		want  bool   // pruned
	}{
		{name: "ThisHostDeadPID", id: "testhost:31:q", want: true},
		{name: "ThisHostLivePID", id: "testhost:32:q", alive: true},
		{name: "ThisHostDeadPIDLiveLease", id: "testhost:33:q", lease: true},
		{name: "ThisHostOtherQueues", id: "testhost:34:other"},
		{name: "OtherHostFresh", id: "elsewhere:35:q"},
		{name: "OtherHostExpired", id: "elsewhere:36:q", beat: old, want: true},
		{name: "ThisHostLivePIDExpired", id: "testhost:37:q", alive: true, beat: old, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.ghost(t, tc.id, "q", []byte(`{"class":"Log","args":[1]}`))
			if tc.beat != "" {
				e.srv.Do(t, "HSET", queue.HeartbeatKey(e.ns), tc.id, tc.beat)
			}
			if tc.lease {
				if _, err := e.q.NewLease(tc.id, "", time.Minute).Acquire(ctx); err != nil {
					t.Fatal(err)
				}
			}
			_, pid, _, _ := queue.ParseWorkerID(tc.id)
			pr := e.pruner("requeue")
			pr.Alive = func() (map[int]bool, error) { return map[int]bool{pid: tc.alive}, nil }
			pruned, again, err := pr.Prune(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(pruned) == 1 && pruned[0] == tc.id; got != tc.want || len(pruned) > 1 {
				t.Errorf("pruned %v, want %s pruned: %v", pruned, tc.id, tc.want)
			}
			if tc.want == e.registered(tc.id) {
				t.Errorf("registered after prune: %v, want %v", !tc.want, !tc.want)
			}
			if tc.lease && (again <= 0 || again > time.Minute) {
				t.Errorf("again = %v, want when the live lease runs out", again)
			}
		})
	}
}

// TestPruner_OnOrphan: a pruned worker's in-flight job goes back to the
// head of its queue (requeue), or into the failed list with the record
// Ruby Resque writes (fail): Resque::DirtyExit for a worker of this host
// found dead by its pid, Resque::PruneDeadWorkerDirtyExit for one whose
// heartbeat expired.
func TestPruner_OnOrphan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	old := time.Now().Add(-time.Hour).UTC().Format(queue.HeartbeatFormat)
	orphan := []byte(`{"class":"Log","args":["orphan"]}`)
	for _, tc := range []struct {
		name, policy, id, beat string
		exc, msg               string // "" for a requeue
	}{
		{name: "Requeue", policy: "requeue", id: "testhost:41:q"},
		{name: "RequeueExpired", policy: "requeue", id: "elsewhere:42:q", beat: old},
		{name: "Fail", policy: "fail", id: "testhost:43:q", exc: worker.ExcDirtyExit, msg: "Job still being processed"},
		{name: "FailExpired", policy: "fail", id: "elsewhere:44:q", beat: old,
			exc: worker.ExcPrunedDirtyExit, msg: "Worker elsewhere:44:q did not gracefully exit while processing Log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.enqueue(t, "q", "Log", `["waiting"]`)
			e.ghost(t, tc.id, "q", orphan)
			if tc.beat != "" {
				e.srv.Do(t, "HSET", queue.HeartbeatKey(e.ns), tc.id, tc.beat)
			}
			pruned, _, err := e.pruner(tc.policy).Prune(ctx)
			if err != nil || len(pruned) != 1 {
				t.Fatalf("Prune = %v %v, want %s pruned", pruned, err, tc.id)
			}
			if v := e.get(t, queue.WorkerKey(e.ns, tc.id)); v != "" {
				t.Errorf("worker:<id> left behind: %s", v)
			}
			jobs, _ := redis.Strings(e.srv.Do(t, "LRANGE", queue.QueueKey(e.ns, "q"), 0, -1), nil)
			fs := e.failures(t)
			if tc.exc == "" {
				if len(jobs) != 2 || jobs[0] != string(orphan) {
					t.Errorf("queue %q, want the orphan at its head, then the waiting job", jobs)
				}
				if len(fs) != 0 {
					t.Errorf("failures %+v after a requeue", fs)
				}
				return
			}
			if len(jobs) != 1 {
				t.Errorf("queue %q, want only the waiting job", jobs)
			}
			if len(fs) != 1 {
				t.Fatalf("failures %+v, want 1", fs)
			}
			f := fs[0]
			if f.Exception != tc.exc || f.Error != tc.msg || f.Worker != tc.id || f.Queue != "q" || string(f.Payload) != string(orphan) {
				t.Errorf("failure %s %q worker %q queue %q payload %s; want %s %q %q q %s",
					f.Exception, f.Error, f.Worker, f.Queue, f.Payload, tc.exc, tc.msg, tc.id, orphan)
			}
			if got := e.get(t, queue.StatKey(e.ns, "failed")); got != "1" {
				t.Errorf("stat:failed = %q, want 1", got)
			}
		})
	}
}

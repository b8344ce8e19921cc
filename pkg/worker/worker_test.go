package worker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/status"
	"github.com/resqued/resqued/pkg/worker"
)

// env is one test's Redis, namespace, handlers directory and run log.
type env struct {
	srv  *redistest.Server
	ns   string
	q    *queue.Client
	st   *status.Tracker
	dir  string
	runs string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	pool := srv.Pool(t)
	e := &env{srv: srv, ns: ns, q: queue.New(pool, ns), st: status.New(pool, ns), dir: t.TempDir()}
	e.runs = filepath.Join(t.TempDir(), "runs.log")
	// Log appends "<class> <args>" for every run, from the handler's side.
	e.handler(t, "Log", `echo "Log $(cat)" >> "$RUNS"`)
	return e
}

// handler writes an executable sh handler for class into the handlers
// directory; $RUNS names the run log.
func (e *env) handler(t *testing.T, class, body string) {
	t.Helper()
	script := "#!/bin/sh\nRUNS=" + e.runs + "\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(e.dir, class), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// runLines returns the run log's lines.
func (e *env) runLines() []string {
	b, _ := os.ReadFile(e.runs)
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

func (e *env) config(t *testing.T, pid int) worker.Config {
	t.Helper()
	run, err := runner.New(runner.Config{Dir: e.dir, TermTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return worker.Config{
		Queue: e.q, Status: e.st, Runner: run, Queues: []string{"q"},
		Interval: 200 * time.Millisecond, Hostname: "testhost", PID: pid,
		LeaseTTL: time.Second, PruneInterval: -1,
		Logger: hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testWriter{t}}),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// running is a Worker started in the background.
type running struct {
	w    *worker.Worker
	err  error
	done chan struct{}
}

func start(t *testing.T, cfg worker.Config) *running {
	t.Helper()
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{w: w, done: make(chan struct{})}
	go func() { r.err = w.Run(context.Background()); close(r.done) }()
	t.Cleanup(func() {
		w.Terminate()
		<-r.done
	})
	return r
}

func (r *running) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(within):
		t.Fatalf("worker %s still running after %s", r.w.ID(), within)
		return nil
	}
}

func (e *env) registered(id string) bool {
	ids, _ := e.q.Workers(context.Background())
	for _, w := range ids {
		if w == id {
			return true
		}
	}
	return false
}

func (e *env) get(t *testing.T, key string) string {
	t.Helper()
	v, _ := redis.String(e.srv.Do(t, "GET", key), nil)
	return v
}

// A reserve whose reply was lost leaves its job in worker:<id>; a pause
// (USR2) that came next wrote its marker over it, and the job was gone.
// The marker must never replace a job: the held job runs, then the
// worker pauses.
func TestWorker_PauseKeepsHeldJob(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config(t, 101)
	// Idle, the worker blocks on its queue for the whole interval: it
	// does not reserve again before the pause lands.
	cfg.Interval = time.Minute
	w := start(t, cfg)
	redistest.Eventually(t, 10*time.Second, func() bool { return e.registered(w.w.ID()) }, "worker registered")
	// Blocked in its wait, not about to reserve: had its own reserve come
	// after the one below, it would have resumed the job and, told to
	// pause, handed it back to its queue (also safe, but not this case).
	redistest.Eventually(t, 10*time.Second, func() bool {
		list, _ := redis.String(e.srv.Do(t, "CLIENT", "LIST"), nil)
		return strings.Contains(list, "cmd=blmove")
	}, "worker blocked waiting for a job")

	// The job is on a queue the worker does not listen to, reserved into
	// its worker:<id> as its own reserve script would have.
	payload, _ := queue.Encode("Log", []byte(`["held"]`), "tok-held")
	if err := e.q.Enqueue(ctx, "elsewhere", payload, queue.EnqueueOptions{Track: true, ID: "tok-held"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Fetcher(w.w.ID()).Reserve(ctx, []string{"elsewhere"}, queue.ReserveOptions{}); err != nil {
		t.Fatal(err)
	}
	w.w.Pause()
	redistest.Eventually(t, 10*time.Second, func() bool { return len(e.runLines()) == 1 }, "the held job ran (runs: %v)", e.runLines())
	redistest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(e.get(t, queue.WorkerKey(e.ns, w.w.ID())), `"paused":true`)
	}, "the worker paused after the held job")
	if got := e.get(t, queue.StatKey(e.ns, "processed")); got != "1" {
		t.Errorf("stat:processed = %q, want 1", got)
	}
	if s, err := e.st.Get(ctx, "tok-held"); err != nil || s.Code != status.Complete {
		t.Errorf("status = %v %v, want complete", s.Code, err)
	}
	w.w.Resume()
	redistest.Eventually(t, 10*time.Second, func() bool { return e.get(t, queue.WorkerKey(e.ns, w.w.ID())) == "" }, "marker cleared on resume")
}

// Two live processes with one worker id (same hostname, both the same pid
// in their own PID namespaces) ran every job twice, each resuming the
// other's. The second must refuse to start, and every job run once.
func TestWorker_SharedIDRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := start(t, e.config(t, 1))
	redistest.Eventually(t, 10*time.Second, func() bool { return e.registered(a.w.ID()) }, "first worker registered")
	b := start(t, e.config(t, 1))

	for i := 0; i < 20; i++ {
		p, _ := queue.Encode("Log", []byte(`["`+strconv.Itoa(i)+`"]`), "")
		if err := e.q.Enqueue(ctx, "q", p, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	err := b.wait(t, 20*time.Second)
	if !errors.Is(err, queue.ErrIDInUse) || !strings.Contains(err.Error(), "--hostname") {
		t.Fatalf("second worker with the same id: Run = %v, want a refusal naming --hostname", err)
	}
	redistest.Eventually(t, 20*time.Second, func() bool { return len(e.runLines()) >= 20 }, "20 jobs ran (runs: %d)", len(e.runLines()))
	seen := map[string]int{}
	for _, l := range e.runLines() {
		seen[l]++
	}
	for l, n := range seen {
		if n != 1 {
			t.Errorf("job %s ran %d times", l, n)
		}
	}
	if len(seen) != 20 {
		t.Errorf("%d distinct jobs ran, want 20", len(seen))
	}
	if !e.registered(a.w.ID()) {
		t.Error("the refused worker unregistered the live one")
	}
}

// A worker whose id was taken over (its lease lapsed and another process
// claimed it) must not record outcomes under it or take more jobs.
func TestQueue_FinishRefusedWithoutLease(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := "testhost:7:q"
	lease := e.q.NewLease(id, "", time.Minute)
	if _, err := lease.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := queue.Encode("Log", []byte(`[1]`), "")
	_ = e.q.Enqueue(ctx, "q", p, queue.EnqueueOptions{})
	_ = e.q.Enqueue(ctx, "q", p, queue.EnqueueOptions{})
	r, err := lease.Fetcher().Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Do(t, "SET", queue.OwnerKey(e.ns, id), "someone-else")
	if ok, err := e.q.FinishJob(ctx, r, queue.Outcome{}); ok || !errors.Is(err, queue.ErrNotOwner) {
		t.Errorf("FinishJob under a lost lease = %v %v, want ErrNotOwner", ok, err)
	}
	if got := e.get(t, queue.StatKey(e.ns, "processed")); got != "" {
		t.Errorf("stat:processed = %q after a refused finish", got)
	}
	if _, err := lease.Fetcher().Reserve(ctx, []string{"q"}, queue.ReserveOptions{}); !errors.Is(err, queue.ErrNotOwner) {
		t.Errorf("Reserve under a lost lease = %v, want ErrNotOwner", err)
	}
	if n, _ := redis.Int(e.srv.Do(t, "LLEN", queue.QueueKey(e.ns, "q")), nil); n != 1 {
		t.Errorf("queue holds %d jobs, want the 1 not taken", n)
	}
}

// A tracked job rejected before it runs (args not an array, over
// --max-payload, not a job at all) kept the "running" the reserve script
// gave it, forever. It must end failed, with the status TTL.
func TestWorker_RejectedTrackedJobsEndFailed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cases := map[string]string{
		"tok-args":  `{"class":"Log","args":{"not":"an array"},"id":"tok-args"}`,
		"tok-big":   `{"class":"Log","args":["` + strings.Repeat("x", 600) + `"],"id":"tok-big"}`,
		"tok-class": `{"class":42,"args":[],"id":"tok-class"}`,
	}
	for id, p := range cases {
		if err := e.q.Enqueue(ctx, "q", []byte(p), queue.EnqueueOptions{Track: true, ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config(t, 102)
	cfg.Interval, cfg.MaxPayload = -1, 500 // drain, then return
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for id := range cases {
		s, err := e.st.Get(ctx, id)
		if err != nil || s.Code != status.Failed {
			t.Errorf("%s: status %v %v, want failed", id, s.Code, err)
		}
		if ttl, _ := redis.Int(e.srv.Do(t, "TTL", status.Key(e.ns, id)), nil); ttl <= 0 {
			t.Errorf("%s: status TTL %d, want the 24 h expiry", id, ttl)
		}
	}
	if n, _ := redis.Int(e.srv.Do(t, "LLEN", queue.FailedKey(e.ns)), nil); n != 3 {
		t.Errorf("%d failure records, want 3", n)
	}
	if len(e.runLines()) != 0 {
		t.Errorf("a rejected job ran: %v", e.runLines())
	}
}

// deadWorker reserves the next job of q into the worker:<id> of a worker
// that then "died" (registered, never finished).
func (e *env) deadWorker(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	if n, _ := redis.Int(e.srv.Do(t, "LLEN", queue.QueueKey(e.ns, "q")), nil); n == 0 {
		p, _ := queue.Encode("Log", []byte(`[0]`), "")
		_ = e.q.Enqueue(ctx, "q", p, queue.EnqueueOptions{})
	}
	if err := e.q.RegisterWorker(ctx, id, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Fetcher(id).Reserve(ctx, []string{"q"}, queue.ReserveOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) pruner(onOrphan string) *worker.Pruner {
	return &worker.Pruner{Queue: e.q, Self: "testhost:1:q", Hostname: "testhost", Queues: []string{"q"},
		OnOrphan: onOrphan, Alive: func() (map[int]bool, error) { return map[int]bool{}, nil }, LeaseRecheck: time.Millisecond}
}

// --on-orphan fail left the status "running" forever and did not count
// the job as processed; a requeued orphan kept "running" too.
func TestPruner_OrphanStatus(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		policy string
		want   status.Code
		ttl    bool
	}{{"fail", status.Failed, true}, {"requeue", status.Waiting, false}} {
		t.Run(tc.policy, func(t *testing.T) {
			e := newEnv(t)
			p, _ := queue.Encode("Log", []byte(`[1]`), "tok")
			_ = e.q.Enqueue(ctx, "q", p, queue.EnqueueOptions{Track: true, ID: "tok"})
			e.deadWorker(t, "testhost:9:q")
			if s, _ := e.st.Get(ctx, "tok"); s.Code != status.Running {
				t.Fatalf("status after reserve = %v", s.Code)
			}
			pruned, _, err := e.pruner(tc.policy).Prune(ctx)
			if err != nil || len(pruned) != 1 {
				t.Fatalf("Prune = %v %v", pruned, err)
			}
			s, err := e.st.Get(ctx, "tok")
			if err != nil || s.Code != tc.want {
				t.Errorf("status = %v %v, want %v", s.Code, err, tc.want)
			}
			// A failed orphan says why in its status, as a job that failed
			// while its worker lived does.
			full, _ := e.st.GetFull(ctx, "tok")
			if wantErr := map[string]string{"fail": "Resque::DirtyExit: Job still being processed"}[tc.policy]; full.Error != wantErr {
				t.Errorf("status error = %q, want %q", full.Error, wantErr)
			}
			ttl, _ := redis.Int(e.srv.Do(t, "TTL", status.Key(e.ns, "tok")), nil)
			if tc.ttl != (ttl > 0) {
				t.Errorf("status TTL = %d, want expiry %v", ttl, tc.ttl)
			}
			if tc.policy == "fail" {
				if got := e.get(t, queue.StatKey(e.ns, "processed")); got != "1" {
					t.Errorf("stat:processed = %q, want 1", got)
				}
				if got := e.get(t, queue.StatKey(e.ns, "failed")); got != "1" {
					t.Errorf("stat:failed = %q, want 1", got)
				}
			}
		})
	}
}

// A released job (taken just as the worker was told to stop) goes back to
// waiting.
func TestQueue_ReleaseStatusWaiting(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, _ := queue.Encode("Log", []byte(`[1]`), "tok")
	_ = e.q.Enqueue(ctx, "q", p, queue.EnqueueOptions{Track: true, ID: "tok"})
	r, err := e.q.Fetcher("testhost:3:q").Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.q.Release(ctx, r); err != nil {
		t.Fatal(err)
	}
	if s, _ := e.st.Get(ctx, "tok"); s.Code != status.Waiting {
		t.Errorf("status after release = %v, want waiting", s.Code)
	}
}

// A job that kills its worker was requeued on every prune, forever. Each
// redelivery counts, and past --max-redeliveries it fails as DirtyExit
// with the count in the error.
func TestPruner_MaxRedeliveries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, _ := queue.Encode("Log", []byte(`["poison"]`), "tok")
	_ = e.q.Enqueue(ctx, "q", p, queue.EnqueueOptions{Track: true, ID: "tok"})
	pr := e.pruner("requeue")
	pr.MaxRedeliveries = 2
	for i := 0; i < 3; i++ {
		e.deadWorker(t, "testhost:"+string(rune('4'+i))+":q")
		if pruned, _, err := pr.Prune(ctx); err != nil || len(pruned) != 1 {
			t.Fatalf("prune %d = %v %v", i+1, pruned, err)
		}
		n, _ := redis.Int(e.srv.Do(t, "LLEN", queue.QueueKey(e.ns, "q")), nil)
		if want := map[bool]int{true: 1, false: 0}[i < 2]; n != want {
			t.Fatalf("after death %d the queue holds %d jobs, want %d", i+1, n, want)
		}
	}
	fs, err := e.q.Failures(ctx, 0, -1)
	if err != nil || len(fs) != 1 {
		t.Fatalf("failures = %v %v, want 1", fs, err)
	}
	if fs[0].Exception != worker.ExcDirtyExit || !strings.Contains(fs[0].Error, "died 3 times") || !strings.Contains(fs[0].Error, "redelivered 2 times") {
		t.Errorf("failure = %s: %s", fs[0].Exception, fs[0].Error)
	}
	if s, _ := e.st.Get(ctx, "tok"); s.Code != status.Failed {
		t.Errorf("status = %v, want failed", s.Code)
	}
	if keys, _ := redis.Strings(e.srv.Do(t, "KEYS", e.ns+":resqued:redeliveries:*"), nil); len(keys) != 0 {
		t.Errorf("redelivery count left behind: %v", keys)
	}
}

// A pruner killed while it held the prune lock blocked every prune for
// the lock's 60 s; a holder of this host whose process is gone is taken
// over.
func TestPruner_TakesOverDeadHoldersLock(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	host, _ := os.Hostname()
	pr := e.pruner("requeue")
	pr.Hostname, pr.Self = host, host+":1:q"
	e.deadWorker(t, host+":8:q")
	// A pid that is certainly not running: beyond pid_max.
	e.srv.Do(t, "SET", queue.PruneLockKey(e.ns), host+":99999999:q", "EX", 60)
	pruned, _, err := pr.Prune(ctx)
	if err != nil || len(pruned) != 1 {
		t.Fatalf("Prune under a dead holder's lock = %v %v, want the ghost pruned", pruned, err)
	}
	// A live holder keeps it.
	e.deadWorker(t, host+":9:q")
	e.srv.Do(t, "SET", queue.PruneLockKey(e.ns), host+":4242:q", "EX", 60)
	pr.Alive = func() (map[int]bool, error) { return map[int]bool{4242: true}, nil }
	if pruned, _, _ := pr.Prune(ctx); len(pruned) != 0 {
		t.Errorf("pruned %v under a live holder's lock", pruned)
	}
}

// A job without an id could be a tracked delayed job whose token a Ruby
// scheduler dropped; the worker looks that up only while tracked delayed
// jobs are about, not for every plain job.
func TestWorker_NoTokenLookupWithoutDelayedJobs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		p, _ := queue.Encode("Log", []byte(`["`+strconv.Itoa(i)+`"]`), "")
		_ = e.q.Enqueue(ctx, "q", p, queue.EnqueueOptions{})
	}
	e.srv.Do(t, "CONFIG", "RESETSTAT")
	cfg := e.config(t, 103)
	cfg.Interval = -1
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(e.runLines()); n != 5 {
		t.Fatalf("%d jobs ran, want 5", n)
	}
	// One HGETALL is the prune's read of the heartbeats; a look-up per
	// job would be five more.
	stats, _ := redis.String(e.srv.Do(t, "INFO", "commandstats"), nil)
	calls := 0
	if _, rest, ok := strings.Cut(stats, "cmdstat_hgetall:calls="); ok {
		calls, _ = strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
	}
	if calls > 1 {
		t.Errorf("HGETALL ran %d times for 5 plain jobs: the worker looked up delayed-job tokens with no tracked delayed job about", calls)
	}
}

// A worker whose lease another process took (it lapsed while this one was
// stopped or cut off) stops, leaving the id to the new holder.
func TestWorker_StopsWhenIDTakenOver(t *testing.T) {
	e := newEnv(t)
	w := start(t, e.config(t, 104))
	redistest.Eventually(t, 10*time.Second, func() bool { return e.registered(w.w.ID()) }, "worker registered")
	e.srv.Do(t, "SET", queue.OwnerKey(e.ns, w.w.ID()), "another-process", "PX", 60000)
	err := w.wait(t, 20*time.Second)
	if err != nil && !errors.Is(err, queue.ErrNotOwner) {
		t.Fatalf("Run = %v", err)
	}
	if got := e.get(t, queue.OwnerKey(e.ns, w.w.ID())); got != "another-process" {
		t.Errorf("the stopped worker touched the new holder's lease: %q", got)
	}
	if !e.registered(w.w.ID()) {
		t.Error("the stopped worker unregistered the id the new holder uses")
	}
}

// A worker of another host is pruned by its heartbeat's expiry alone:
// never by its pid (this host's process table says nothing about it), and
// never by a lapsed lease while its heartbeat is fresh (a host that lost
// Redis for a while, whose leases ran out but whose heartbeat is within
// Expiry, is alive and must find its workers and jobs where it left them).
// A live lease keeps even an expired one; one with no heartbeat at all is
// left alone, as Ruby does.
func TestPruner_OtherHostsByHeartbeatOnly(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	now, err := e.q.ServerTime(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale := now.Add(-6 * time.Minute).Format(queue.HeartbeatFormat)
	fresh, leased, expired, noBeat := "otherhost:5:q", "otherhost:6:q", "otherhost:7:q", "otherhost:8:q"
	for _, id := range []string{fresh, leased, expired, noBeat} {
		e.deadWorker(t, id) // registered, holding a job, no lease
	}
	e.srv.Do(t, "HSET", queue.HeartbeatKey(e.ns), leased, stale)
	e.srv.Do(t, "HSET", queue.HeartbeatKey(e.ns), expired, stale)
	e.srv.Do(t, "HDEL", queue.HeartbeatKey(e.ns), noBeat)
	e.srv.Do(t, "SET", queue.OwnerKey(e.ns, leased), "their-token", "PX", 60000)
	// Every pid counts as dead here, and the pruner listens on the same
	// queues: only the host name keeps the pid check away.
	pruned, _, err := e.pruner("requeue").Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pruned) != 1 || pruned[0] != expired {
		t.Errorf("pruned %v, want only %s (heartbeat expired, no lease)", pruned, expired)
	}
	for _, id := range []string{fresh, leased, noBeat} {
		if !e.registered(id) {
			t.Errorf("%s was unregistered", id)
		}
		if raw, _ := e.q.InFlight(ctx, id); raw == nil {
			t.Errorf("%s lost its job", id)
		}
	}
	if n, _ := e.q.Size(ctx, "q"); n != 1 {
		t.Errorf("queue holds %d jobs, want the pruned worker's one requeued", n)
	}
}

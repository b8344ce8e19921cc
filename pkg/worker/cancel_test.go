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

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
	"github.com/resqued/resqued/pkg/worker"
)

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// A running job is cancelled: the handler's whole process group stops
// (its child too), the failure says Resqued::Cancelled and who asked,
// the tracked status fails, the job is not retried although its policy
// would retry the handler's exit status, and the worker goes on to the
// next job.
func TestWorker_Cancel(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pids := t.TempDir()
	// The handler starts a child, then waits; on TERM it exits 75, the
	// status its retry policy retries.
	e.handler(t, "Sleep", `trap 'exit 75' TERM
sleep 60 &
echo $! > `+filepath.Join(pids, "child")+`
echo $$ > `+filepath.Join(pids, "handler")+`
wait`)
	retry := `"retry":{"attempts":3,"exit_codes":[-1],"delay":1}`
	if err := e.q.Enqueue(ctx, "q", []byte(`{"class":"Sleep","args":[],"id":"tok",`+retry+`}`), queue.EnqueueOptions{Track: true, ID: "tok"}); err != nil {
		t.Fatal(err)
	}
	if err := e.q.Enqueue(ctx, "q", []byte(`{"class":"Log","args":["next"]}`), queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	r := start(t, e.config(t, 4101))
	redistest.Eventually(t, 10*time.Second, func() bool {
		return readPID(t, filepath.Join(pids, "child")) > 0 && readPID(t, filepath.Join(pids, "handler")) > 0
	}, "the handler never started its child")
	child, hpid := readPID(t, filepath.Join(pids, "child")), readPID(t, filepath.Join(pids, "handler"))

	c := &worker.Canceller{Queue: e.q, Status: e.st}
	res, err := c.CancelJob(ctx, "tok", "alice@web-3 (test)")
	if err != nil {
		t.Fatal(err)
	}
	if res.How != worker.CancelledRunning || res.Worker != r.w.ID() || res.Failure == nil {
		t.Fatalf("cancel = %+v (%s), want cancelled on %s", res, res, r.w.ID())
	}
	if got := res.String(); got != "job tok cancelled while running on worker "+r.w.ID()+" (recorded as failed, Resqued::Cancelled)" {
		t.Errorf("String = %q", got)
	}
	redistest.Eventually(t, 5*time.Second, func() bool { return !alive(child) && !alive(hpid) },
		"handler %d or its child %d outlived the cancel", hpid, child)

	fs, err := e.q.Failures(ctx, 0, -1)
	if err != nil || len(fs) != 1 {
		t.Fatalf("failures = %+v %v, want one", fs, err)
	}
	if f := fs[0]; f.Exception != worker.ExcCancelled || !strings.HasPrefix(f.Error, "cancelled by alice@web-3 (test) at ") || f.Worker != r.w.ID() {
		t.Errorf("failure = %s: %s on %s", f.Exception, f.Error, f.Worker)
	}
	s, err := e.st.GetFull(ctx, "tok")
	if err != nil || s.Code != status.Failed || !strings.Contains(s.Error, "cancelled by alice@web-3") {
		t.Errorf("status = %+v %v, want failed by alice", s, err)
	}
	// The next job runs; the cancelled one is neither retried nor run
	// again.
	redistest.Eventually(t, 10*time.Second, func() bool { return len(e.runLines()) == 1 }, "the next job never ran")
	if n, _ := redis.Int(e.srv.Do(t, "ZCARD", queue.DelayedScheduleKey(e.ns)), nil); n != 0 {
		t.Errorf("the cancelled job was scheduled for a retry")
	}
	if n, _ := redis.Int(e.srv.Do(t, "GET", queue.StatKey(e.ns, "failed")), nil); n != 1 {
		t.Errorf("stat:failed = %d, want 1", n)
	}

	// Nothing left to cancel: the job and the worker say so.
	if _, err := c.CancelJob(ctx, "tok", "alice"); !errors.Is(err, worker.ErrNothingToCancel) || !strings.Contains(err.Error(), "its status says failed") {
		t.Errorf("second cancel: %v, want nothing to cancel, status failed", err)
	}
	redistest.Eventually(t, 5*time.Second, func() bool {
		_, err := e.q.RunningOn(ctx, r.w.ID())
		return errors.Is(err, queue.ErrNotRunning)
	}, "worker never went idle")
	if _, err := c.CancelWorker(ctx, r.w.ID(), "alice"); !errors.Is(err, worker.ErrNothingToCancel) || !strings.Contains(err.Error(), "runs no job") {
		t.Errorf("cancel of an idle worker: %v", err)
	}
	if _, err := c.CancelWorker(ctx, "nohost:1:q", "alice"); !errors.Is(err, worker.ErrNothingToCancel) || !strings.Contains(err.Error(), "no worker") {
		t.Errorf("cancel of an unknown worker: %v", err)
	}
}

// A stale request (for a job that ended before the worker took it) is
// ignored: the next job with another record runs to its end.
func TestWorker_CancelStaleRequestIgnored(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w := queue.WorkerID("testhost", 4102, []string{"q"})
	// A request for a record this worker never holds.
	e.srv.Do(t, "RPUSH", queue.CancelKey(e.ns, w), `{"record":"0000000000000000000000000000000000000000","by":"old"}`)
	e.handler(t, "Slow", `sleep 0.5; echo "Slow done" >> "$RUNS"`)
	if err := e.q.Enqueue(ctx, "q", []byte(`{"class":"Slow","args":[]}`), queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, e.config(t, 4102))
	redistest.Eventually(t, 10*time.Second, func() bool { return len(e.runLines()) == 1 }, "the job never finished")
	redistest.Eventually(t, 5*time.Second, func() bool {
		n, _ := redis.Int(e.srv.Do(t, "GET", queue.StatKey(e.ns, "processed")), nil)
		return n == 1
	}, "the job's outcome was never recorded")
	if n, _ := redis.Int(e.srv.Do(t, "LLEN", queue.FailedKey(e.ns)), nil); n != 0 {
		t.Errorf("%d failures: a stale cancel request stopped a job", n)
	}
	if n, _ := redis.Int(e.srv.Do(t, "LLEN", queue.CancelKey(e.ns, w)), nil); n != 0 {
		t.Errorf("the stale request was never taken")
	}
}

// A handler that traps TERM and exits 0 was still stopped on request: it
// is recorded as cancelled, not as done, since it may have stopped half
// way.
func TestWorker_CancelTrappedExitZero(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pids := t.TempDir()
	e.handler(t, "Graceful", `trap 'echo cleaned up >&2; exit 0' TERM
echo $$ > `+filepath.Join(pids, "handler")+`
sleep 60 &
wait`)
	if err := e.q.Enqueue(ctx, "q", []byte(`{"class":"Graceful","args":[],"id":"tok0"}`), queue.EnqueueOptions{Track: true, ID: "tok0"}); err != nil {
		t.Fatal(err)
	}
	r := start(t, e.config(t, 4103))
	redistest.Eventually(t, 10*time.Second, func() bool { return readPID(t, filepath.Join(pids, "handler")) > 0 },
		"the handler never started")
	c := &worker.Canceller{Queue: e.q, Status: e.st}
	res, err := c.CancelJob(ctx, "tok0", "bob@ops (test)")
	if err != nil {
		t.Fatal(err)
	}
	if res.How != worker.CancelledRunning || res.Failure == nil {
		t.Fatalf("cancel = %+v (%s), want cancelled on %s", res, res, r.w.ID())
	}
	f := res.Failure
	if f.Exception != worker.ExcCancelled || !strings.Contains(f.Error, "the handler exited 0 after SIGTERM") ||
		!strings.Contains(strings.Join(f.Backtrace, "\n"), "cleaned up") {
		t.Errorf("failure = %s: %s %q", f.Exception, f.Error, f.Backtrace)
	}
	if n, _ := redis.Int(e.srv.Do(t, "GET", queue.StatKey(e.ns, "failed")), nil); n != 1 {
		t.Errorf("stat:failed = %d, want 1: a cancelled job is not done", n)
	}
	s, err := e.st.GetFull(ctx, "tok0")
	if err != nil || s.Code != status.Failed {
		t.Errorf("status = %+v %v, want failed", s, err)
	}
}

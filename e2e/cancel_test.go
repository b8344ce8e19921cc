package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// TestCancel: resqued cancel stops a running job from another host (a
// UTS namespace of its own), and removes queued and delayed jobs before
// they run; the handler's own run log shows what ran. An unknown id and
// an idle worker exit 3, a malformed id exits 2.
func TestCancel(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	runs := filepath.Join(t.TempDir(), "runs.log")
	h := filepath.Join(dir, "h")
	handler(t, h, "Long", `echo "Long $(cat)" >> `+runs+`
sleep 60 &
wait`)
	handler(t, h, "Quick", `echo "Quick $(cat)" >> `+runs)
	start(t, srv, h, "--queues", "busy", "--term-timeout", "1")
	q := queue.New(srv.Pool(t), ns)
	st := status.New(srv.Pool(t), ns)
	ctx := context.Background()
	ran := func(line string) int {
		b, _ := os.ReadFile(runs)
		return strings.Count(string(b), line+"\n")
	}
	enqueue := func(args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, srv, append([]string{"enqueue", "--track"}, args...)...)
		if code != 0 {
			t.Fatalf("enqueue %v: exit %d: %s", args, code, stderr)
		}
		return out
	}
	// runningJob waits until job id runs and its handler has logged line.
	runningJob := func(id, line string) *queue.RunningJob {
		t.Helper()
		var j *queue.RunningJob
		redistest.Eventually(t, 20*time.Second, func() bool {
			var err error
			j, err = q.FindRunning(ctx, id)
			return err == nil && ran(line) == 1
		}, "job %s never ran", id)
		return j
	}
	failedWith := func(id, by string) {
		t.Helper()
		s, err := st.GetFull(ctx, id)
		if err != nil || s.Code != status.Failed || !strings.Contains(s.Error, by) {
			t.Errorf("status of %s = %+v %v, want failed, by %s", id, s, err, by)
		}
	}

	t.Run("RunningFromAnotherHost", func(t *testing.T) {
		requireUTS(t)
		id := enqueue("--queue", "busy", "Long", "one")
		j := runningJob(id, `Long ["one"]`)
		cmd := exec.Command("unshare", append(utsArgs(), "sh", "-c", `hostname "$0" && exec "$@"`, "ops-host", resqued, "cancel", id)...)
		cmd.Env = append(os.Environ(), "REDIS_URL="+srv.URL(), "USER=alice", noRaceExitSleep)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cancel from ops-host: %v: %s", err, out)
		}
		if want := "job " + id + " cancelled while running on worker " + j.Worker + " (recorded as failed, Resqued::Cancelled)"; strings.TrimSpace(string(out)) != want {
			t.Errorf("cancel said %q, want %q", out, want)
		}
		var f *queue.Failure
		for _, g := range failures(t, srv) {
			if strings.Contains(string(g.Payload), id) {
				g := g
				f = &g
			}
		}
		// user@host as the other host names itself (the user is root when
		// unshare maps it).
		if f == nil || f.Exception != "Resqued::Cancelled" || !strings.Contains(f.Error, "@ops-host (resqued cancel) at ") || f.Worker != j.Worker {
			t.Fatalf("failure = %+v, want Resqued::Cancelled by someone@ops-host", f)
		}
		failedWith(id, "@ops-host")
		// Not run again: the next job runs, the cancelled one does not.
		next := enqueue("--queue", "busy", "Quick", "after-one")
		redistest.Eventually(t, 20*time.Second, func() bool { return ran(`Quick ["after-one"]`) == 1 }, "job %s never ran", next)
		if n := ran(`Long ["one"]`); n != 1 {
			t.Errorf("the cancelled job ran %d times, want 1", n)
		}
	})

	t.Run("Worker", func(t *testing.T) {
		id := enqueue("--queue", "busy", "Long", "two")
		j := runningJob(id, `Long ["two"]`)
		out, stderr, code := cliEnv(t, srv, nil, "cancel", "--worker", j.Worker, "--by", "bob")
		if code != 0 || !strings.Contains(out, "cancelled while running on worker "+j.Worker) {
			t.Fatalf("cancel --worker: exit %d: %s %s", code, out, stderr)
		}
		failedWith(id, "cancelled by bob (resqued cancel) at ")
		redistest.Eventually(t, 10*time.Second, func() bool {
			_, err := q.RunningOn(ctx, j.Worker)
			return err != nil
		}, "worker %s never went idle", j.Worker)
		_, stderr, code = cli(t, srv, "cancel", "--worker", j.Worker)
		if code != 3 || !strings.Contains(stderr, "runs no job (idle or paused)") {
			t.Errorf("cancel --worker of an idle worker: exit %d: %s", code, stderr)
		}
	})

	t.Run("Queued", func(t *testing.T) {
		// No worker takes "later" until the cancel is done.
		id := enqueue("--queue", "later", "Quick", "queued")
		out, stderr, code := cli(t, srv, "cancel", id)
		if code != 0 || out != "job "+id+" removed from queue later before it started" {
			t.Fatalf("cancel queued: exit %d: %q %s", code, out, stderr)
		}
		failedWith(id, "before it started")
		// A worker for "later" now runs what is there: only the marker.
		start(t, srv, h, "--queues", "later")
		enqueue("--queue", "later", "Quick", "marker")
		redistest.Eventually(t, 20*time.Second, func() bool { return ran(`Quick ["marker"]`) == 1 }, "marker never ran")
		if n := ran(`Quick ["queued"]`); n != 0 {
			t.Errorf("the cancelled queued job ran %d times", n)
		}
	})

	t.Run("Delayed", func(t *testing.T) {
		id := enqueue("--queue", "busy", "--in", "2", "Quick", "delayed")
		out, stderr, code := cli(t, srv, "cancel", id)
		if code != 0 || !strings.HasPrefix(out, "job "+id+" removed from the delayed set (was due at ") {
			t.Fatalf("cancel delayed: exit %d: %q %s", code, out, stderr)
		}
		failedWith(id, "before it started")
		// A job due after it runs; the cancelled one never does.
		enqueue("--queue", "busy", "--in", "3", "Quick", "delayed-marker")
		redistest.Eventually(t, 30*time.Second, func() bool { return ran(`Quick ["delayed-marker"]`) == 1 }, "delayed marker never ran")
		if n := ran(`Quick ["delayed"]`); n != 0 {
			t.Errorf("the cancelled delayed job ran %d times", n)
		}
	})

	t.Run("UnknownAndMalformed", func(t *testing.T) {
		_, stderr, code := cli(t, srv, "cancel", "0123456789abcdef0123456789abcdef")
		if code != 3 || !strings.Contains(stderr, "job 0123456789abcdef0123456789abcdef is not queued, delayed or running (finished, or never existed)") {
			t.Errorf("unknown id: exit %d: %s", code, stderr)
		}
		_, stderr, code = cli(t, srv, "cancel", "not an id")
		if code != 2 || !strings.Contains(stderr, `job id "not an id": must not contain whitespace`) || !strings.Contains(stderr, "Try: ") {
			t.Errorf("malformed id: exit %d: %s", code, stderr)
		}
		_, stderr, code = cli(t, srv, "cancel", "--worker", "nohost:1:q")
		if code != 3 || !strings.Contains(stderr, "no worker nohost:1:q is registered") {
			t.Errorf("unknown worker: exit %d: %s", code, stderr)
		}
	})
}

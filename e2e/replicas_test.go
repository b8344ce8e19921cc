package e2e

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// TestMinReplicas: against a real master and replica, resqued
// --min-replicas 1 runs jobs with every write acknowledged; with the
// replica stopped, enqueue still enqueues but says so (exit 4) and the
// daemon runs every job once, warning once for the whole outage, not per
// job, and once more when the replica is back.
func TestMinReplicas(t *testing.T) {
	t.Parallel()
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	dir, log := t.TempDir(), filepath.Join(t.TempDir(), "runs")
	handler(t, dir, "Rec", `echo "$RESQUE_JOB_ID" >> "`+log+`"`)
	// The daemon's timeout leaves a loaded machine room for a live
	// replica's acknowledgement, and keeps the stopped replica's jobs
	// (two waited writes each) from taking long.
	d := start(t, master, dir, "--queues", "q", "--min-replicas", "1", "--min-replicas-timeout", "0.5")
	enqueue := func(timeout string) (string, string, int) {
		t.Helper()
		return cli(t, master, "enqueue", "--queue", "q", "--min-replicas", "1", "--min-replicas-timeout", timeout, "Rec")
	}
	var ids []string
	id, stderr, code := enqueue("10")
	if code != 0 || stderr != "" {
		t.Fatalf("enqueue with a live replica: exit %d, stderr %q", code, stderr)
	}
	ids = append(ids, id)
	waitProcessed(t, master, 1)
	processed := queue.StatKey(ns, "processed")
	redistest.Eventually(t, 10*time.Second, func() bool { return getInt(t, replica, processed) == 1 }, "replica never saw the job processed")

	// On a loaded machine a live replica can miss the 0.5 s once; the
	// daemon then warns and, at the next acknowledged write, says so
	// again. Count only the outage made here.
	const warning, again = "job writes not acknowledged by enough replicas", "replicas acknowledge job writes again"
	redistest.Eventually(t, 10*time.Second, func() bool {
		out := d.out.String()
		return strings.Count(out, warning) == strings.Count(out, again)
	}, "a warning from before the outage never cleared")
	before := len(d.out.String())
	if !replica.Signal(syscall.SIGSTOP) {
		t.Fatal("replica not running")
	}
	t.Cleanup(func() { replica.Signal(syscall.SIGCONT) })
	id, stderr, code = enqueue("0.2")
	if code != 4 || id == "" {
		t.Fatalf("enqueue with the replica stopped: exit %d, stdout %q, want 4 and the id", code, id)
	}
	if want := "resqued: job " + id + " was enqueued, but only 0 of 1 replicas acknowledged it within 200ms: a failover now could lose it\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	ids = append(ids, id)
	for i := 0; i < 5; i++ {
		id := queue.NewID()
		p, _ := queue.Encode("Rec", nil, id)
		push(t, master, "q", string(p))
		ids = append(ids, id)
	}
	waitProcessed(t, master, len(ids))
	if n := strings.Count(d.out.String()[before:], warning); n != 1 {
		t.Errorf("%d warnings %q for one outage of %d jobs, want 1", n, warning, len(ids)-1)
	}

	if !replica.Signal(syscall.SIGCONT) {
		t.Fatal("replica not running")
	}
	redistest.Eventually(t, 10*time.Second, func() bool { return getInt(t, replica, processed) == len(ids) }, "the resumed replica did not catch up")
	id, stderr, code = enqueue("10")
	if code != 0 || stderr != "" {
		t.Fatalf("enqueue once the replica is back: exit %d, stderr %q", code, stderr)
	}
	ids = append(ids, id)
	waitProcessed(t, master, len(ids))
	redistest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(d.out.String()[before:], again)
	}, "no line saying the replicas acknowledge again")

	b, _ := os.ReadFile(log)
	runs := strings.Fields(string(b))
	sort.Strings(runs)
	sort.Strings(ids)
	if strings.Join(runs, ",") != strings.Join(ids, ",") {
		t.Errorf("runs %v, want each of %v once", runs, ids)
	}
	if n, _ := redis.Int(master.Do(t, "LLEN", queue.FailedKey(ns)), nil); n != 0 {
		t.Errorf("%d failures", n)
	}
}

// TestMinReplicas_Usage: a negative --min-replicas and a timeout of zero
// (WAIT would block for ever) are usage errors.
func TestMinReplicas_Usage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, args := range [][]string{{"--min-replicas", "-1"}, {"--min-replicas", "1", "--min-replicas-timeout", "0"}} {
		_, stderr, code := cli(t, srv, append(append([]string{"enqueue"}, args...), "Rec")...)
		if code != 2 || !strings.Contains(stderr, "Try: --min-replicas") {
			t.Errorf("enqueue %v: exit %d, stderr %q, want a usage error", args, code, stderr)
		}
	}
}

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/faultproxy"
	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// haWithin bounds every wait in the high-availability tests: work must
// resume well within it after a failover.
const haWithin = 30 * time.Second

// haJobs writes a handler that logs its argument to a run log, one line
// per run, and returns the run log's path.
func haJobs(t *testing.T, dir string) string {
	t.Helper()
	runs := filepath.Join(t.TempDir(), "runs")
	handler(t, dir, "Step", `read -r a; sleep 0.03; echo "$a" >> "`+runs+`"`)
	return runs
}

// haRuns counts the runs of each job, by its argument, from the run log.
func haRuns(t *testing.T, runs string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(runs)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, l := range strings.Fields(string(b)) {
		n[l]++
	}
	return n
}

func haPush(t *testing.T, srv *redistest.Server, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		push(t, srv, "ha", fmt.Sprintf(`{"class":"Step","args":[%d]}`, i))
	}
}

// haCheck checks what the new primary recorded once every job ran: the
// queue is empty, nothing failed, no worker holds a job, and the
// processed count covers every job. It returns the number of extra runs.
func haCheck(t *testing.T, srv *redistest.Server, runs string, total int, d *daemon) int {
	t.Helper()
	redistest.Eventually(t, 60*time.Second, func() bool { return len(haRuns(t, runs)) == total }, "not every job ran")
	redistest.Eventually(t, haWithin, func() bool {
		n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "ha")), nil)
		return n == 0 && getInt(t, srv, queue.StatKey(ns, "processed")) >= total
	}, "the new primary never recorded every job as processed")
	extra, counts := 0, haRuns(t, runs)
	for i := 0; i < total; i++ {
		n := counts[fmt.Sprintf("[%d]", i)]
		if n == 0 {
			t.Errorf("job %d never ran", i)
		}
		extra += max(n-1, 0)
	}
	if fs := failures(t, srv); len(fs) != 0 {
		t.Errorf("failed = %+v, want none", fs)
	}
	ids, _ := redis.Strings(srv.Do(t, "SMEMBERS", queue.WorkersKey(ns)), nil)
	if len(ids) != 1 {
		t.Errorf("workers = %v, want the one worker still registered", ids)
	}
	for _, id := range ids {
		if rec, _ := redis.String(srv.Do(t, "GET", queue.WorkerKey(ns, id)), nil); rec != "" {
			t.Errorf("worker:%s still holds %s", id, rec)
		}
	}
	if !outRunning(d) {
		t.Errorf("resqued exited: %v", d.err)
	}
	return extra
}

// haProcessedAfter measures how long after since the primary srv records
// a job done beyond what it had at since.
func haProcessedAfter(t *testing.T, srv *redistest.Server, base int, since time.Time) float64 {
	t.Helper()
	redistest.Eventually(t, haWithin, func() bool {
		return getInt(t, srv, queue.StatKey(ns, "processed")) > base
	}, "no job was recorded on the new primary within %s of the failover", haWithin)
	return time.Since(since).Seconds()
}

// TestHA_SentinelFailover: resqued on a redis+sentinel URL keeps working
// through a SENTINEL FAILOVER in the middle of a stream of jobs: every
// job runs and is recorded on the new primary, and the worker carries
// on. Redis replicates asynchronously, so a job taken from the old
// primary between the replica's promotion and its own demotion may run
// again; the test reports how many did.
func TestHA_SentinelFailover(t *testing.T) {
	t.Parallel()
	const pw = "ha-s3cret"
	a := redistest.Start(t, redistest.Password(pw))
	b := redistest.StartReplica(t, a, redistest.Password(pw))
	ss := redistest.StartSentinels(t, a, "mymaster", redistest.SentinelOptions{AuthPass: pw})
	dir := t.TempDir()
	runs := haJobs(t, dir)
	const first, total = 80, 120
	haPush(t, a, 0, first)
	d := startURL(t, "redis+sentinel://:"+pw+"@"+ss.Addrs()+"/mymaster/0", dir, nil, "-vv", "--queues", "ha", "--interval", "1")
	redistest.Eventually(t, haWithin, func() bool { return len(haRuns(t, runs)) >= 20 }, "jobs never started running")

	old := ss.Failover(t)
	now := ss.WaitSwitch(t, old, haWithin)
	switched := time.Now()
	if now != b.Addr {
		t.Fatalf("sentinels switched to %s, want %s", now, b.Addr)
	}
	base := getInt(t, b, queue.StatKey(ns, "processed"))
	if base >= first {
		t.Fatalf("all %d jobs were done before the switch: no failover mid-stream", first)
	}
	resumed := haProcessedAfter(t, b, base, switched)
	haPush(t, b, first, total)
	extra := haCheck(t, b, runs, total, d)
	t.Logf("SENTINEL FAILOVER with %d of %d jobs done: the new primary recorded the next job %.2fs after +switch-master; %d job(s) ran twice (writes the old primary took after the promotion)",
		base, first, resumed, extra)
	if strings.Contains(d.out.String(), pw) {
		t.Errorf("the log shows the password")
	}
}

// TestHA_ManagedFailover: resqued reaches Redis through a name (a
// proxy) that a managed service re-points. First mid-stream: B, a
// replica of A, is promoted, the name is pointed at B, and A is demoted
// under resqued's live connections, which answer READONLY. Then while
// the worker idles in a blocking wait on B, back to A: the wait gets
// UNBLOCKED. resqued goes on each time: no job lost, none run or
// recorded twice, the worker never exits. Writes are paused around each
// switch, as a managed service does, so that the new primary has every
// write the old one took.
func TestHA_ManagedFailover(t *testing.T) {
	t.Parallel()
	a := redistest.Start(t)
	b := redistest.StartReplica(t, a)
	name, err := faultproxy.New(a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { name.Close() })
	dir := t.TempDir()
	runs := haJobs(t, dir)
	const first, total, more = 80, 120, 140
	haPush(t, a, 0, first)
	d := startURL(t, "redis://"+name.Addr+"/0", dir, nil, "-vv", "--queues", "ha", "--interval", "5")
	redistest.Eventually(t, haWithin, func() bool { return len(haRuns(t, runs)) >= 20 }, "jobs never started running")

	// Mid-stream, A to B: READONLY.
	switched := redistest.ManagedSwitch(t, a, b, haWithin, name.Retarget)
	base := getInt(t, b, queue.StatKey(ns, "processed"))
	if base >= first {
		t.Fatalf("all %d jobs were done before the switch: no failover mid-stream", first)
	}
	resumed := haProcessedAfter(t, b, base, switched)
	haPush(t, b, first, total)
	if extra := haCheck(t, b, runs, total, d); extra != 0 {
		t.Errorf("%d job(s) ran twice", extra)
	}
	if got := getInt(t, b, queue.StatKey(ns, "processed")); got != total {
		t.Errorf("stat:processed = %d on B, want %d: an outcome recorded twice or lost", got, total)
	}
	t.Logf("managed failover A to B with %d of %d jobs done: B recorded the next job %.2fs after the switch", base, first, resumed)

	// Idle, B back to A: the worker's BLMOVE on B gets UNBLOCKED.
	a.WaitLinkUp(t)
	redistest.Eventually(t, haWithin, func() bool { return b.Info(t, "clients")["blocked_clients"] == "1" }, "the worker never waited on B")
	switched = redistest.ManagedSwitch(t, b, a, haWithin, name.Retarget)
	haPush(t, a, total, more)
	resumed = haProcessedAfter(t, a, total, switched)
	if extra := haCheck(t, a, runs, more, d); extra != 0 {
		t.Errorf("%d job(s) ran twice", extra)
	}
	if got := getInt(t, a, queue.StatKey(ns, "processed")); got != more {
		t.Errorf("stat:processed = %d on A, want %d", got, more)
	}
	out := d.out.String()
	if !strings.Contains(out, "UNBLOCKED") {
		t.Errorf("the worker's wait on B never got UNBLOCKED")
	}
	t.Logf("managed failover B to A while idle: A recorded the next job %.2fs after the switch (--interval 5); READONLY replies in the log: %d, UNBLOCKED: %d, outage lines: %d",
		resumed, strings.Count(out, "READONLY"), strings.Count(out, "UNBLOCKED"), strings.Count(out, "redis unavailable"))
}

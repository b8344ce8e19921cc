package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/faultproxy"
	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/internal/testskip"
	"github.com/resqued/resqued/pkg/queue"
)

// TestManyHosts: three daemons with three host names share one Redis:
// its queues, its delayed jobs (every daemon runs the scheduler) and a
// recurring "every: 1s" entry (every daemon runs the schedule). Every job
// runs exactly once, every tick fires once with no gap, and nobody is
// pruned. The host names come from UTS namespaces (unshare --uts, then
// hostname inside, as on three machines) or from --hostname (as three
// containers sharing a name would use it). The --hostname variant also
// cuts one host off Redis for 30 s while the others work on: its workers
// are not pruned (their heartbeats stay within the 5-minute expiry; a
// lapsed lease alone prunes nobody), a daemon that starts meanwhile and
// prunes leaves them alone, the cut host prunes nobody when it is back,
// and then takes jobs again.
func TestManyHosts(t *testing.T) {
	t.Parallel()
	t.Run("UTSNamespaces", func(t *testing.T) {
		t.Parallel()
		requireUTS(t)
		manyHosts(t, true, false)
	})
	t.Run("HostnameFlag", func(t *testing.T) {
		t.Parallel()
		manyHosts(t, false, true)
	})
}

// requireUTS fails the test when UTS namespaces are not available,
// unless RESQUED_TEST_NO_UTS is set: then it skips, saying so.
func requireUTS(t *testing.T) {
	t.Helper()
	out, err := exec.Command("unshare", append(utsArgs(), "sh", "-c", "hostname resqued-probe && hostname")...).CombinedOutput()
	if err == nil && strings.TrimSpace(string(out)) == "resqued-probe" {
		return
	}
	why := fmt.Sprintf("unshare --uts cannot give a process its own host name here (%v: %s)", err, strings.TrimSpace(string(out)))
	if os.Getenv("RESQUED_TEST_NO_UTS") != "" {
		testskip.Skipf(t, "SKIPPED: %s; RESQUED_TEST_NO_UTS is set", why)
	}
	t.Fatalf("%s: run as root or where user namespaces are allowed, or set RESQUED_TEST_NO_UTS=1 to skip this test", why)
}

func utsArgs() []string {
	if os.Geteuid() == 0 {
		return []string{"--uts"}
	}
	return []string{"--uts", "--map-root-user"}
}

// hostDaemon is one daemon of TestManyHosts, named host.
type hostDaemon struct {
	*daemon
	host string
}

// startHost runs resqued as host against url: in a UTS namespace of its
// own whose host name is host, or with --hostname host. The test's
// cleanup sends QUIT and, failing that, KILL.
func startHost(t *testing.T, host, url string, uts bool, args ...string) *hostDaemon {
	t.Helper()
	all := append([]string{"--redis", url}, args...)
	var cmd *exec.Cmd
	if uts {
		// sh sets the name and execs resqued: one process, the daemon.
		cmd = exec.Command("unshare", append(utsArgs(), append([]string{"sh", "-c", `hostname "$0" && exec "$@"`, host, resqued}, all...)...)...)
	} else {
		cmd = exec.Command(resqued, append(all, "--hostname", host)...)
	}
	cmd.Env = append(os.Environ(), "RESQUE_PROCLINE_PREFIX=e2e ", noRaceExitSleep)
	d := launch(t, cmd, host)
	return &hostDaemon{daemon: d, host: host}
}

// hostRun is one line of the run log: a job run, from the handler's side.
type hostRun struct {
	id, host, uname, class string
}

func readRuns(t *testing.T, path string) []hostRun {
	t.Helper()
	b, _ := os.ReadFile(path)
	var out []hostRun
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 4 {
			continue
		}
		host, _, _ := strings.Cut(f[1], ":")
		out = append(out, hostRun{id: f[0], host: host, uname: f[2], class: f[3]})
	}
	return out
}

// workersOf counts the registered workers of each host.
func workersOf(t *testing.T, srv *redistest.Server) map[string]int {
	t.Helper()
	ids, _ := redis.Strings(srv.Do(t, "SMEMBERS", queue.WorkersKey(ns)), nil)
	n := map[string]int{}
	for _, id := range ids {
		host, _, _ := strings.Cut(id, ":")
		n[host]++
	}
	return n
}

func manyHosts(t *testing.T, uts, cut bool) {
	srv := redistest.Start(t)
	ctx := context.Background()
	q := queue.New(srv.Pool(t), ns)
	dir, tmp := t.TempDir(), t.TempDir()
	log, sched := filepath.Join(tmp, "runs"), filepath.Join(tmp, "schedule.yml")
	for _, class := range []string{"Job", "Tick"} {
		handler(t, dir, class, `echo "$RESQUE_JOB_ID $RESQUE_WORKER $(hostname) $RESQUE_CLASS" >> "`+log+`"; sleep 0.05`)
	}
	if err := os.WriteFile(sched, []byte("tick: {every: 1s, class: Tick, queue: ticks}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--handlers", dir, "--queues", "*", "--count", "2", "--interval", "0.5", "--schedule", sched}
	prefix := map[bool]string{true: "uts", false: "flag"}[uts]
	names := []string{prefix + "-host1", prefix + "-host2", prefix + "-host3"}
	// The third host reaches Redis through a proxy, to be cut off.
	proxy, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	var hosts []*hostDaemon
	for i, h := range names {
		url := srv.URL()
		if i == 2 {
			url = "redis://" + proxy.Addr
		}
		hosts = append(hosts, startHost(t, h, url, uts, args...))
	}
	redistest.Eventually(t, 30*time.Second, func() bool {
		n := workersOf(t, srv)
		return n[names[0]] == 2 && n[names[1]] == 2 && n[names[2]] == 2
	}, "the three hosts' six workers never all registered: %v", workersOf(t, srv))

	var want []string // the ids of every job enqueued
	enqueue := func(n int, delay bool) {
		t.Helper()
		for i := 0; i < n; i++ {
			id := queue.NewID()
			p, _ := queue.Encode("Job", nil, id)
			var err error
			if delay {
				err = q.Delay(ctx, time.Now().Add(time.Second), "jobs", p, queue.EnqueueOptions{})
			} else {
				err = q.Enqueue(ctx, "jobs", p, queue.EnqueueOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
		}
	}
	jobsRun := func() int {
		n := 0
		for _, r := range readRuns(t, log) {
			if r.class == "Job" {
				n++
			}
		}
		return n
	}
	waitJobs := func() {
		t.Helper()
		redistest.Eventually(t, 60*time.Second, func() bool { return jobsRun() >= len(want) }, "jobs run never reached %d", len(want))
	}

	// All three share the work: a bulk enqueue, and delayed jobs that
	// every daemon's scheduler competes to move.
	var lines strings.Builder
	for i := 0; i < 90; i++ {
		lines.WriteString(`{"class":"Job","queue":"jobs"}` + "\n")
	}
	out, stderr, code := cliIO(t, srv, nil, lines.String(), "enqueue", "--stdin")
	if code != 0 {
		t.Fatalf("enqueue --stdin: exit %d: %s", code, stderr)
	}
	want = append(want, strings.Fields(out)...)
	for i := 0; i < 10; i++ {
		id, stderr, code := cli(t, srv, "enqueue", "--queue", "jobs", "--in", "1", "Job")
		if code != 0 {
			t.Fatalf("enqueue --in 1: exit %d: %s", code, stderr)
		}
		want = append(want, id)
	}
	waitJobs()
	perHost := map[string]int{}
	for _, r := range readRuns(t, log) {
		perHost[r.host]++
	}
	for _, h := range names {
		if perHost[h] == 0 {
			t.Errorf("%s ran none of the first %d jobs: %v", h, len(want), perHost)
		}
	}

	var cutAt, backAt time.Time
	if cut {
		cutAt = time.Now()
		proxy.Refuse(true)
		proxy.CutAll()
		t.Logf("%s cut off Redis", names[2])
		enqueue(40, false)
		enqueue(10, true)
		// A daemon that starts meanwhile prunes at once: the cut host's
		// workers have lapsed leases but fresh heartbeats.
		late := startHost(t, prefix+"-host4", srv.URL(), uts, append(args[:len(args)-2:len(args)-2], "--count", "1")...)
		redistest.Eventually(t, 30*time.Second, func() bool { return workersOf(t, srv)[late.host] == 1 }, "%s never registered", late.host)
		late.signal(syscall.SIGQUIT)
		if err := late.wait(30 * time.Second); err != nil {
			t.Errorf("%s: %v", late.host, err)
		}
		if strings.Contains(late.out.String(), "pruned dead worker") {
			t.Errorf("%s, starting while %s was cut off, pruned:\n%s", late.host, names[2], late.out.String())
		}
		waitJobs()
		for time.Since(cutAt) < 30*time.Second {
			if n := workersOf(t, srv)[names[2]]; n != 2 {
				t.Fatalf("%s cut off for %s: %d of its workers still registered, want 2", names[2], time.Since(cutAt).Round(time.Second), n)
			}
			time.Sleep(time.Second)
		}
		proxy.Refuse(false)
		backAt = time.Now()
		t.Logf("%s back after %s", names[2], backAt.Sub(cutAt).Round(time.Millisecond))
		// It takes jobs again: push a few at a time until it runs one.
		seen := len(readRuns(t, log))
		redistest.Eventually(t, 30*time.Second, func() bool {
			for _, r := range readRuns(t, log)[seen:] {
				if r.host == names[2] && r.class == "Job" {
					return true
				}
			}
			enqueue(3, false)
			time.Sleep(100 * time.Millisecond)
			return false
		}, "%s took no job after it was back", names[2])
	}
	enqueue(20, false)
	enqueue(10, true)
	waitJobs()
	// Enough ticks to show there is no gap and no double.
	redistest.Eventually(t, 30*time.Second, func() bool {
		n := 0
		for _, r := range readRuns(t, log) {
			if r.class == "Tick" {
				n++
			}
		}
		return n >= 10
	}, "fewer than 10 ticks ran")

	for _, h := range hosts {
		h.signal(syscall.SIGQUIT)
	}
	for _, h := range hosts {
		if err := h.wait(30 * time.Second); err != nil {
			t.Errorf("%s: %v", h.host, err)
		}
		if strings.Contains(h.out.String(), "pruned dead worker") {
			t.Errorf("%s pruned a worker:\n%s", h.host, h.out.String())
		}
	}

	// Every job ran exactly once, on the host it says.
	runs := readRuns(t, log)
	count := map[string]int{}
	ticks := 0
	for _, r := range runs {
		count[r.id]++
		if uts && r.uname != r.host {
			t.Errorf("job %s ran in host name %q under worker of %q", r.id, r.uname, r.host)
		}
		if r.class == "Tick" {
			ticks++
		}
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("job %s ran %d times", id, n)
		}
	}
	for _, id := range want {
		if count[id] != 1 {
			t.Errorf("job %s ran %d times, want 1", id, count[id])
		}
	}
	if n := len(count) - ticks; n != len(want) {
		t.Errorf("%d jobs ran, %d enqueued", n, len(want))
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "jobs")), nil); n != 0 {
		t.Errorf("%d jobs left queued", n)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.FailedKey(ns)), nil); n != 0 {
		t.Errorf("%d failures", n)
	}

	// Every tick fired once, with no gap: each claimed tick (its lock)
	// ran one Tick job or still waits in its queue. Only a tick the cut
	// host had claimed as it was cut off may be lost.
	locks, _ := redis.Strings(srv.Do(t, "KEYS", queue.ScheduleLockKey(ns, "tick", 0)[:len(queue.ScheduleLockKey(ns, "tick", 0))-1]+"*"), nil)
	var tss []int64
	lost := 0
	for _, k := range locks {
		ts, _ := strconv.ParseInt(k[strings.LastIndexByte(k, ':')+1:], 10, 64)
		tss = append(tss, ts)
		holder, _ := redis.String(srv.Do(t, "GET", k), nil)
		if cut && strings.Contains(holder, ":"+strconv.Itoa(hosts[2].cmd.Process.Pid)+":") &&
			time.Unix(ts, 0).After(cutAt.Add(-3*time.Second)) && time.Unix(ts, 0).Before(cutAt.Add(3*time.Second)) {
			lost++ // at most: claimed just before the cut
		}
	}
	sort.Slice(tss, func(i, j int) bool { return tss[i] < tss[j] })
	if len(tss) < 10 {
		t.Fatalf("only %d ticks claimed", len(tss))
	}
	for i := 1; i < len(tss); i++ {
		if tss[i] != tss[i-1]+1 {
			t.Errorf("no tick between %d and %d", tss[i-1], tss[i])
		}
	}
	queuedTicks, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "ticks")), nil)
	if got := ticks + queuedTicks; got > len(tss) || got < len(tss)-lost {
		t.Errorf("%d ticks claimed, %d ran and %d are queued (%d may be lost to the cut)", len(tss), ticks, queuedTicks, lost)
	}
	t.Logf("%d jobs and %d ticks (%d claimed, %d queued at the end) across %v", len(want), ticks, len(tss), queuedTicks, perHostAll(runs))
}

func perHostAll(runs []hostRun) map[string]int {
	n := map[string]int{}
	for _, r := range runs {
		n[r.host]++
	}
	return n
}

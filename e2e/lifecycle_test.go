package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// rubyPS is exactly what Ruby Resque runs to find live workers on a host.
const rubyPS = `ps -A -o pid,command | grep -E "[r]esque:work|[r]esque:\sStarting|[r]esque-[0-9]"`

func rubyLivePIDs(t *testing.T) map[int]bool {
	t.Helper()
	out, _ := exec.Command("sh", "-c", rubyPS).Output()
	pids := map[int]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			if pid, err := strconv.Atoi(f[0]); err == nil {
				pids[pid] = true
			}
		}
	}
	return pids
}

func workers(t *testing.T, srv *redistest.Server) []string {
	t.Helper()
	ids, _ := redis.Strings(srv.Do(t, "SMEMBERS", queue.WorkersKey(ns)), nil)
	sort.Strings(ids)
	return ids
}

func pidOf(t *testing.T, id string) int {
	t.Helper()
	_, pid, _, err := queue.ParseWorkerID(id)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func title(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
}

// TestCount runs COUNT=3: three processes, three Resque workers, each
// with a live pid Ruby's ps check finds; jobs run concurrently; a worker
// killed with -9 is replaced and its job is recorded, not lost; QUIT stops
// them all and leaves no worker keys.
func TestCount(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, gate := t.TempDir(), t.TempDir()
	// Block marks itself started, then waits for the gate file named by
	// its first arg.
	handler(t, dir, "Block", `n=$(tr -dc 0-9); echo x >> "`+gate+`/started.$n"; while [ ! -e "`+gate+`/go.$n" ]; do sleep 0.02; done`)
	cmdEnv := []string{"COUNT=3"}
	d := startEnv(t, srv, dir, cmdEnv, "--queues", "work,other")

	var ids []string
	redistest.Eventually(t, 30*time.Second, func() bool { ids = workers(t, srv); return len(ids) == 3 }, "3 workers never registered")
	live := rubyLivePIDs(t)
	supervisorPID := d.cmd.Process.Pid
	if live[supervisorPID] {
		t.Errorf("the supervisor (pid %d, %q) matches Ruby's worker pattern", supervisorPID, title(supervisorPID))
	}
	for _, id := range ids {
		pid := pidOf(t, id)
		if !strings.HasSuffix(id, ":work,other") {
			t.Errorf("worker id %q", id)
		}
		if !live[pid] {
			t.Errorf("worker %s: pid not found by Ruby's ps pattern; title %q", id, title(pid))
		}
		if got := title(pid); !strings.HasPrefix(got, "e2e resque-") || !strings.Contains(got, "Waiting for work,other") {
			t.Errorf("title %q", got)
		}
		if hb, _ := redis.String(srv.Do(t, "HGET", queue.HeartbeatKey(ns), id), nil); hb == "" {
			t.Errorf("worker %s has no heartbeat", id)
		}
	}

	// Three jobs run at the same time.
	for i := 1; i <= 3; i++ {
		push(t, srv, "work", `{"class":"Block","args":[`+strconv.Itoa(i)+`]}`)
	}
	for i := 1; i <= 3; i++ {
		f := filepath.Join(gate, "started."+strconv.Itoa(i))
		redistest.Eventually(t, 30*time.Second, func() bool { _, err := os.Stat(f); return err == nil }, "job %d never started: not concurrent", i)
	}
	// Kill -9 the worker running job 2: a new worker takes its place and
	// the job goes back to its queue (--on-orphan requeue, the default)
	// and runs again.
	var victim string
	for _, id := range ids {
		raw, _ := redis.String(srv.Do(t, "GET", queue.WorkerKey(ns, id)), nil)
		if strings.Contains(raw, `"args":[2]`) {
			victim = id
		}
	}
	if victim == "" {
		t.Fatal("no worker shows job 2 in worker:<id>")
	}
	if err := syscall.Kill(pidOf(t, victim), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, 30*time.Second, func() bool {
		now := workers(t, srv)
		if len(now) != 3 {
			return false
		}
		for _, id := range now {
			if id == victim {
				return false
			}
		}
		return true
	}, "killed worker %s not replaced", victim)
	redistest.Eventually(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(gate, "started.2"))
		return strings.Count(string(b), "x") == 2
	}, "job 2 was not run again after its worker was killed")
	if fs := failures(t, srv); len(fs) != 0 {
		t.Fatalf("failures after kill -9 with requeue: %+v", fs)
	}
	for _, id := range workers(t, srv) {
		if !rubyLivePIDs(t)[pidOf(t, id)] {
			t.Errorf("replacement %s not found by Ruby's ps pattern", id)
		}
	}
	// QUIT: the three running jobs finish, everybody unregisters.
	d.signal(syscall.SIGQUIT)
	for _, i := range []int{1, 2, 3} {
		os.WriteFile(filepath.Join(gate, "go."+strconv.Itoa(i)), nil, 0o644)
	}
	if err := d.wait(30 * time.Second); err != nil {
		t.Fatalf("supervisor exit: %v", err)
	}
	if got := getInt(t, srv, queue.StatKey(ns, "processed")); got != 3 {
		t.Errorf("processed = %d, want each of the 3 jobs once", got)
	}
	assertNoWorkerKeys(t, srv)
}

// assertNoWorkerKeys checks that only what Resque keeps after a worker
// leaves is left: global stats, queues, failures.
func assertNoWorkerKeys(t *testing.T, srv *redistest.Server) {
	t.Helper()
	keys, _ := redis.Strings(srv.Do(t, "KEYS", "*"), nil)
	for _, k := range keys {
		switch {
		case k == queue.StatKey(ns, "processed"), k == queue.StatKey(ns, "failed"),
			k == queue.QueuesKey(ns), k == queue.FailedKey(ns), strings.HasPrefix(k, queue.QueuePrefix(ns)):
		case historyKey(t, srv, k):
		default:
			t.Errorf("key %s left behind", k)
		}
	}
}

// historyKey reports whether k is one of the dashboard's history keys,
// which outlive the workers that wrote them; each must expire.
func historyKey(t *testing.T, srv *redistest.Server, k string) bool {
	t.Helper()
	if !strings.HasPrefix(k, queue.HistoryPrefix(ns)) {
		return false
	}
	if ttl, _ := redis.Int(srv.Do(t, "TTL", k), nil); ttl <= 0 {
		t.Errorf("history key %s left without an expiry (TTL %d)", k, ttl)
	}
	return true
}

func TestCount_TermStopsAllJobs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, gate := t.TempDir(), t.TempDir()
	handler(t, dir, "Forever", `n=$(tr -dc 0-9); touch "`+gate+`/started.$n"; sleep 1000 & wait`)
	d := startEnv(t, srv, dir, []string{"COUNT=2"}, "--queues", "w", "--term-timeout", "1")
	redistest.Eventually(t, 30*time.Second, func() bool { return len(workers(t, srv)) == 2 }, "workers never registered")
	push(t, srv, "w", `{"class":"Forever","args":[1]}`)
	push(t, srv, "w", `{"class":"Forever","args":[2]}`)
	for i := 1; i <= 2; i++ {
		f := filepath.Join(gate, "started."+strconv.Itoa(i))
		redistest.Eventually(t, 30*time.Second, func() bool { _, err := os.Stat(f); return err == nil }, "job %d never started", i)
	}
	d.signal(syscall.SIGTERM)
	if err := d.wait(30 * time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	fs := failures(t, srv)
	if len(fs) != 2 {
		t.Fatalf("failures = %+v, want both jobs", fs)
	}
	for _, f := range fs {
		if f.Exception != "Resque::DirtyExit" || !strings.Contains(f.Error, "worker shutting down") {
			t.Errorf("failure %s %q", f.Exception, f.Error)
		}
	}
	assertNoWorkerKeys(t, srv)
}

// TestPrune_KilledWorker: a single worker killed with -9 mid-job leaves a
// ghost; the next worker on this host for the same queues prunes it and,
// with --on-orphan fail, fails its job the way Ruby Resque does.
func TestPrune_KilledWorker(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, gate := t.TempDir(), t.TempDir()
	handler(t, dir, "Hang", `touch "`+gate+`/started"; exec sleep 1000`)
	push(t, srv, "p", `{"class":"Hang","args":["x"]}`)
	first := start(t, srv, dir, "--queues", "p")
	redistest.Eventually(t, 30*time.Second, func() bool { _, err := os.Stat(filepath.Join(gate, "started")); return err == nil }, "job never started")
	ghost := workers(t, srv)
	if len(ghost) != 1 {
		t.Fatalf("workers = %v", ghost)
	}
	first.signal(syscall.SIGKILL)
	first.wait(10 * time.Second)

	// A foreign worker whose heartbeat expired long ago is pruned too,
	// whatever its host; a live foreign one is left alone.
	stale, fresh := "otherhost:42:p", "otherhost:43:p"
	for _, id := range []string{stale, fresh} {
		srv.Do(t, "SADD", queue.WorkersKey(ns), id)
	}
	srv.Do(t, "HSET", queue.HeartbeatKey(ns), stale, "2020-01-01T00:00:00+00:00")
	srv.Do(t, "HSET", queue.HeartbeatKey(ns), fresh, time.Now().UTC().Format("2006-01-02T15:04:05+00:00"))

	start(t, srv, dir, "--queues", "p", "--on-orphan", "fail")
	redistest.Eventually(t, 30*time.Second, func() bool {
		ids := workers(t, srv)
		return len(ids) == 2 && !contains(ids, ghost[0]) && !contains(ids, stale) && contains(ids, fresh)
	}, "ghost %s and stale %s not pruned (workers %v)", ghost[0], stale, workers(t, srv))
	fs := failures(t, srv)
	if len(fs) != 1 || fs[0].Exception != "Resque::DirtyExit" || fs[0].Worker != ghost[0] || fs[0].Queue != "p" ||
		fs[0].Error != "Job still being processed" || string(fs[0].Payload) != `{"class":"Hang","args":["x"]}` {
		t.Fatalf("failures = %+v", fs)
	}
	for _, k := range []string{queue.WorkerKey(ns, ghost[0]), queue.WorkerStartedKey(ns, ghost[0])} {
		if n, _ := redis.Int(srv.Do(t, "EXISTS", k), nil); n != 0 {
			t.Errorf("%s left after prune", k)
		}
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestPidfile(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	pf := filepath.Join(t.TempDir(), "resqued.pid")

	// Stale: a pid that is certainly gone.
	gone := exec.Command("true")
	gone.Run()
	os.WriteFile(pf, []byte(strconv.Itoa(gone.Process.Pid)), 0o644)
	d := start(t, srv, dir, "--queues", "q", "--pidfile", pf)
	redistest.Eventually(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(pf)
		return strings.TrimSpace(string(b)) == strconv.Itoa(d.cmd.Process.Pid)
	}, "pidfile not written with the daemon's pid")

	// Live: a second daemon refuses, clearly, and leaves the file alone.
	_, stderr, code := cliEnv(t, srv, nil, "--handlers", dir, "--queues", "q", "--pidfile", pf)
	if code == 0 || !strings.Contains(stderr, "already running as pid "+strconv.Itoa(d.cmd.Process.Pid)) {
		t.Errorf("second daemon: exit %d, %q", code, stderr)
	}
	d.signal(syscall.SIGQUIT)
	if err := d.wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pf); !os.IsNotExist(err) {
		t.Errorf("pidfile left after exit: %v", err)
	}
	// PIDFILE in the environment works too, with COUNT: the supervisor's pid.
	d = startEnv(t, srv, dir, []string{"PIDFILE=" + pf, "COUNT=2"}, "--queues", "q")
	redistest.Eventually(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(pf)
		return strings.TrimSpace(string(b)) == strconv.Itoa(d.cmd.Process.Pid)
	}, "PIDFILE not written with the supervisor's pid")
}

// TestLogging: -v logs one line per job start and end with class, queue,
// job id, duration and outcome; --log-format json makes them JSON.
func TestLogging(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Talk", `echo "hello from the handler"; echo '{"level":"warn","msg":"careful"}'`)
	push(t, srv, "l", `{"class":"Talk","args":[],"id":"jid1"}`)
	d := startArgs(t, srv, dir, nil, "--queues", "l", "-v", "--log-format", "json", "--interval", "0")
	if err := d.wait(30 * time.Second); err != nil {
		t.Fatalf("INTERVAL=0 must drain and exit 0: %v", err)
	}
	var sawDone, sawLine, sawWarn bool
	for _, line := range strings.Split(d.out.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]interface{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if m["@message"] == "job done" {
			sawDone = m["class"] == "Talk" && m["queue"] == "l" && m["job_id"] == "jid1" && m["outcome"] == "ok" && m["duration"] != nil
		}
		if m["@message"] == "hello from the handler" && m["job_id"] == "jid1" {
			sawLine = true
		}
		if m["@message"] == "careful" && m["@level"] == "warn" {
			sawWarn = true
		}
		if m["@level"] == "debug" {
			t.Errorf("debug line at -v: %q", line)
		}
	}
	if !sawDone || !sawLine || !sawWarn {
		t.Errorf("done=%v handler-line=%v warn-line=%v in:\n%s", sawDone, sawLine, sawWarn, d.out.String())
	}
	if !regexp.MustCompile(`"@level":"info"`).MatchString(d.out.String()) {
		t.Error("no info lines at -v")
	}
}

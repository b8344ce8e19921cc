package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// Persistent handlers (docs/handlers.md, "Persistent handlers") under the
// real daemon. The handler, in sh, appends its pid to m/served for every
// job it takes, creates marker files for the jobs the tests wait on, and
// creates m/eof.<pid> when it leaves its loop at EOF on stdin. The tests
// poll for those and for Redis state, never sleeping for a fixed time.

// persistentHandler writes Pers.persistent.sh into a new handlers
// directory and returns that directory and the marker directory. The
// job's first arg says what to do: "crash" exits 3 mid-job, "hold" waits
// for m/go, "hang" sleeps for good; anything else succeeds at once with
// {"pid":<pid>}.
func persistentHandler(t *testing.T) (dir, m string) {
	t.Helper()
	dir, m = t.TempDir(), t.TempDir()
	handler(t, dir, "Pers.persistent.sh", `m="`+m+`"
while IFS= read -r line; do
  echo $$ >> "$m/served"
  case "$line" in
    *'"args":["crash"]'*) echo "crashing on purpose" >&2; exit 3 ;;
    *'"args":["hold"]'*) touch "$m/hold.$$"; while [ ! -e "$m/go" ]; do sleep 0.02; done ;;
    *'"args":["hang"]'*) touch "$m/hang.$$"; sleep 1000 ;;
  esac
  echo "served a job" >&2
  echo '{"progress":0.5,"message":"halfway"}' >&3
  echo "{\"done\":\"ok\",\"result\":{\"pid\":$$}}" >&3
done
touch "$m/eof.$$"`)
	return dir, m
}

// served returns the pid that took each job so far, in order.
func served(t *testing.T, m string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m, "served"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("served: %q", b)
		}
		pids = append(pids, pid)
	}
	return pids
}

// distinct returns the pids in order of first appearance.
func distinct(pids []int) []int {
	var out []int
	for _, p := range pids {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// markerPid waits for the one file m/<prefix>.<pid> and returns its pid.
func markerPid(t *testing.T, m, prefix string) int {
	t.Helper()
	var pid int
	redistest.Eventually(t, sigWithin, func() bool {
		matches, _ := filepath.Glob(filepath.Join(m, prefix+".*"))
		if len(matches) != 1 {
			return false
		}
		pid, _ = strconv.Atoi(strings.TrimPrefix(filepath.Base(matches[0]), prefix+"."))
		return pid > 0
	}, "no %s.<pid> marker", prefix)
	return pid
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	redistest.Eventually(t, sigWithin, func() bool { return procGone(pid) }, "persistent handler %d still running", pid)
}

func wantStats(t *testing.T, srv *redistest.Server, processed, failed int) {
	t.Helper()
	if n := getInt(t, srv, queue.StatKey(ns, "processed")); n != processed {
		t.Errorf("stat:processed = %d, want %d", n, processed)
	}
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != failed {
		t.Errorf("stat:failed = %d, want %d: %+v", n, failed, failures(t, srv))
	}
}

// enqueueWait runs `resqued enqueue --wait` and returns the pid in the
// job's result.
func enqueueWait(t *testing.T, srv *redistest.Server, arg string) int {
	t.Helper()
	stdout, stderr, code := cli(t, srv, "enqueue", "--wait", "--wait-timeout", "30s", "--queue", "jobs", "Pers", arg)
	var r struct{ Pid int }
	if code != 0 || json.Unmarshal([]byte(stdout), &r) != nil || r.Pid <= 0 {
		t.Fatalf("enqueue --wait Pers %s: exit %d, stdout %q, stderr %q; want {\"pid\":N}", arg, code, stdout, stderr)
	}
	return r.Pid
}

// TestPersistent_ManyJobs: 50 jobs on two workers are served by at most
// two processes, one per worker; on QUIT each leaves at EOF.
func TestPersistent_ManyJobs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := persistentHandler(t)
	d := start(t, srv, dir, "--queues", "jobs", "--count", "2", "--interval", "0.2")
	for i := range 50 {
		push(t, srv, "jobs", `{"class":"Pers","args":[`+strconv.Itoa(i)+`]}`)
	}
	waitProcessed(t, srv, 50)
	wantStats(t, srv, 50, 0)
	pids := served(t, m)
	procs := distinct(pids)
	if len(pids) != 50 || len(procs) < 1 || len(procs) > 2 {
		t.Fatalf("50 jobs served by %d processes %v (%d jobs seen), want 1 or 2 (one per worker)", len(procs), procs, len(pids))
	}

	d.signal(syscall.SIGQUIT)
	sigWaitExit(t, d, sigWithin)
	for _, pid := range procs {
		if !procGone(pid) {
			t.Errorf("persistent handler %d still running after the daemon exited", pid)
		}
		if !sigExists(filepath.Join(m, "eof."+strconv.Itoa(pid))) {
			t.Errorf("persistent handler %d did not leave at EOF on stdin", pid)
		}
	}
}

// TestPersistent_Recycle: --max-jobs-per-process 5 gives 12 jobs on one
// worker to three processes in turn, 5, 5 and 2; each retired one leaves.
func TestPersistent_Recycle(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := persistentHandler(t)
	for i := range 12 {
		push(t, srv, "jobs", `{"class":"Pers","args":[`+strconv.Itoa(i)+`]}`)
	}
	start(t, srv, dir, "--queues", "jobs", "--interval", "0.2", "--max-jobs-per-process", "5")
	waitProcessed(t, srv, 12)
	wantStats(t, srv, 12, 0)
	pids := served(t, m)
	procs := distinct(pids)
	if len(pids) != 12 || len(procs) != 3 {
		t.Fatalf("served by %v, want three processes", pids)
	}
	for i, pid := range pids {
		if pid != procs[i/5] {
			t.Fatalf("served by %v, want 5 jobs per process", pids)
		}
	}
	for _, pid := range procs[:2] {
		waitGone(t, pid)
		sigWaitFile(t, filepath.Join(m, "eof."+strconv.Itoa(pid)))
	}
	if procGone(procs[2]) {
		t.Errorf("the current process %d is gone before its 5th job", procs[2])
	}
}

// TestPersistent_TrackedAndCrash: a tracked job gets its result; a crash
// fails that job alone, and the next job runs in a new process.
func TestPersistent_TrackedAndCrash(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, _ := persistentHandler(t)
	start(t, srv, dir, "--queues", "jobs", "--interval", "0.2")

	a := enqueueWait(t, srv, "one")
	if b := enqueueWait(t, srv, "two"); b != a {
		t.Errorf("second tracked job ran in pid %d, want the same process %d", b, a)
	}

	push(t, srv, "jobs", `{"class":"Pers","args":["crash"],"id":"crashed"}`)
	f := sigOneFailure(t, srv, "Resqued::HandlerFailed", "handler Pers exited with status 3")
	if !strings.Contains(string(f.Payload), `"crashed"`) || f.Queue != "jobs" {
		t.Errorf("failure record = %+v, want the crash job's", f)
	}
	// The process died, so its stderr was read to the end.
	if !slices.Contains(f.Backtrace, "crashing on purpose") || slices.Contains(f.Backtrace, "served a job") {
		t.Errorf("backtrace = %q, want the crash job's stderr only", f.Backtrace)
	}
	waitGone(t, a)

	c := enqueueWait(t, srv, "three")
	if c == a {
		t.Errorf("the job after the crash ran in the crashed pid %d", a)
	}
	wantStats(t, srv, 4, 1)
	if fs := failures(t, srv); len(fs) != 1 {
		t.Errorf("%d failures, want only the crash: %+v", len(fs), fs)
	}
}

// TestPersistent_Quit: QUIT while a persistent job runs lets it finish;
// then the process gets EOF and exits, and the worker unregisters.
func TestPersistent_Quit(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := persistentHandler(t)
	push(t, srv, "jobs", `{"class":"Pers","args":["hold"]}`)
	push(t, srv, "jobs", `{"class":"Pers","args":["next"]}`)
	d := start(t, srv, dir, "--queues", "jobs", "--interval", "0.2")
	pid := markerPid(t, m, "hold")
	id := sigWorkerID(t, srv)

	d.signal(syscall.SIGQUIT)
	sigWaitLogAny(t, d, "shutdown requested", "signal=quit")
	if sigExited(d) || procGone(pid) {
		t.Fatal("QUIT did not wait for the running persistent job")
	}
	if !sigRegistered(t, srv, id) {
		t.Error("worker unregistered while its job was still running")
	}
	if err := os.WriteFile(filepath.Join(m, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sigWaitExit(t, d, sigWithin)

	wantStats(t, srv, 1, 0)
	if n := sigLLen(t, srv, "jobs"); n != 1 {
		t.Errorf("queue holds %d jobs, want the second one still there", n)
	}
	if !procGone(pid) {
		t.Errorf("persistent handler %d still running after the daemon exited", pid)
	}
	if !sigExists(filepath.Join(m, "eof."+strconv.Itoa(pid))) {
		t.Error("the persistent handler did not leave at EOF on stdin")
	}
	sigNoWorkerKeys(t, srv, id)
}

// TestPersistent_Term: TERM stops the running persistent job, which is
// recorded as failed, and the process is gone.
func TestPersistent_Term(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := persistentHandler(t)
	push(t, srv, "jobs", `{"class":"Pers","args":["hold"]}`)
	d := start(t, srv, dir, "--queues", "jobs", "--term-timeout", "30")
	pid := markerPid(t, m, "hold")
	id := sigWorkerID(t, srv)

	d.signal(syscall.SIGTERM)
	sigWaitExit(t, d, sigWithin)
	redistest.Eventually(t, sigWithin, func() bool {
		return getInt(t, srv, queue.StatKey(ns, "failed")) >= 1
	}, "no failure recorded")
	fs := failures(t, srv)
	if len(fs) != 1 {
		t.Fatalf("%d failures, want 1: %+v", len(fs), fs)
	}
	if f := fs[0]; (f.Exception != "Resque::DirtyExit" && f.Exception != "Resqued::HandlerFailed") ||
		!strings.Contains(f.Error, "(worker shutting down)") || f.Worker != id {
		t.Errorf("failure record = %+v, want DirtyExit or HandlerFailed (worker shutting down)", f)
	}
	wantStats(t, srv, 1, 1)
	if !procGone(pid) {
		t.Errorf("persistent handler %d still running after TERM", pid)
	}
	sigNoWorkerKeys(t, srv, id)
}

// TestPersistent_Timeout: --timeout fails a hanging persistent job as
// Resqued::Timeout, and the next job runs in a fresh process.
func TestPersistent_Timeout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := persistentHandler(t)
	push(t, srv, "jobs", `{"class":"Pers","args":["first"]}`)
	push(t, srv, "jobs", `{"class":"Pers","args":["hang"]}`)
	push(t, srv, "jobs", `{"class":"Pers","args":["after"]}`)
	start(t, srv, dir, "--queues", "jobs", "--interval", "0.2", "--timeout", "0.5", "--term-timeout", "5")
	waitProcessed(t, srv, 3)
	sigOneFailure(t, srv, "Resqued::Timeout", "handler Pers timed out after 500ms")
	wantStats(t, srv, 3, 1)

	pids := served(t, m)
	if len(pids) != 3 {
		t.Fatalf("served by %v, want 3 jobs", pids)
	}
	if hung := markerPid(t, m, "hang"); pids[0] != hung || pids[1] != hung {
		t.Errorf("served by %v, hang in %d: want the first two jobs in one process", pids, hung)
	}
	if pids[2] == pids[1] {
		t.Errorf("the job after the timeout ran in the stopped process %d", pids[1])
	}
	waitGone(t, pids[1])
}

package e2e

import (
	"errors"
	"os"
	"path/filepath"
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

// Signal semantics of a single worker process (docs/handlers.md, "Stopping:
// shutdown, USR1 and timeouts"). Handlers announce what they are doing by
// creating marker files; the tests poll for those, for Redis state, the
// process title and the daemon's -vv log, never sleeping for a fixed time.
// The one deliberate time window is the pause tests' one-second watch that
// a queued job is left alone (sigStaysQueued).

// sigWithin bounds every wait in this file: generous for a loaded machine,
// yet each test normally finishes in about a second.
const sigWithin = 20 * time.Second

// sigWaitFile waits until path exists.
func sigWaitFile(t *testing.T, path string) {
	t.Helper()
	redistest.Eventually(t, sigWithin, func() bool {
		_, err := os.Stat(path)
		return err == nil
	}, "%s never created", path)
}

func sigExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// sigWaitLogAny waits until the daemon's output contains one of subs.
func sigWaitLogAny(t *testing.T, d *daemon, subs ...string) {
	t.Helper()
	redistest.Eventually(t, sigWithin, func() bool {
		out := d.out.String()
		for _, s := range subs {
			if strings.Contains(out, s) {
				return true
			}
		}
		return false
	}, "daemon never logged any of %q", subs)
}

// sigWorkerID waits for the daemon to register and returns its worker id.
// Once it is registered its signal handlers are installed.
func sigWorkerID(t *testing.T, srv *redistest.Server) string {
	t.Helper()
	var ids []string
	redistest.Eventually(t, sigWithin, func() bool {
		ids, _ = redis.Strings(srv.Do(t, "SMEMBERS", queue.WorkersKey(ns)), nil)
		return len(ids) == 1
	}, "worker never registered")
	return ids[0]
}

func sigRegistered(t *testing.T, srv *redistest.Server, id string) bool {
	t.Helper()
	ok, _ := redis.Bool(srv.Do(t, "SISMEMBER", queue.WorkersKey(ns), id), nil)
	return ok
}

func sigLLen(t *testing.T, srv *redistest.Server, q string) int {
	t.Helper()
	n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, q)), nil)
	return n
}

func sigExited(d *daemon) bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// sigWaitExit waits for the daemon to exit and fails unless it exited 0.
func sigWaitExit(t *testing.T, d *daemon, within time.Duration) {
	t.Helper()
	if err := d.wait(within); err != nil {
		t.Fatalf("daemon exit: %v (want status 0)", err)
	}
}

// sigNoWorkerKeys checks that, after the daemon exited, nothing but the
// global stats, the failed list and the queues is left in Redis.
func sigNoWorkerKeys(t *testing.T, srv *redistest.Server, id string) {
	t.Helper()
	keys, err := redis.Strings(srv.Do(t, "KEYS", "*"), nil)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		queue.StatKey(ns, "processed"): true,
		queue.StatKey(ns, "failed"):    true,
		queue.FailedKey(ns):            true,
		queue.QueuesKey(ns):            true,
	}
	for _, k := range keys {
		if k == queue.PruneLockKey(ns) {
			// Ruby Resque's pruning lock (SET ... EX 60 NX) is global
			// and left to expire, as Ruby leaves it; it must expire.
			if ttl, _ := redis.Int(srv.Do(t, "TTL", k), nil); ttl <= 0 {
				t.Errorf("%s left behind without an expiry (TTL %d)", k, ttl)
			}
			continue
		}
		if !allowed[k] && !strings.HasPrefix(k, queue.QueuePrefix(ns)) && !historyKey(t, srv, k) {
			t.Errorf("key %q left behind after exit (worker %s)", k, id)
		}
	}
	if ok, _ := redis.Bool(srv.Do(t, "HEXISTS", queue.HeartbeatKey(ns), id), nil); ok {
		t.Errorf("heartbeat of %s left behind", id)
	}
	if sigRegistered(t, srv, id) {
		t.Errorf("%s still in the workers set", id)
	}
}

// sigOneFailure waits for exactly one failure record and checks it.
func sigOneFailure(t *testing.T, srv *redistest.Server, exc string, errSubs ...string) queue.Failure {
	t.Helper()
	redistest.Eventually(t, sigWithin, func() bool {
		return getInt(t, srv, queue.StatKey(ns, "failed")) >= 1
	}, "no failure recorded")
	fs := failures(t, srv)
	if len(fs) != 1 {
		t.Fatalf("%d failures, want 1: %+v", len(fs), fs)
	}
	f := fs[0]
	if f.Exception != exc {
		t.Errorf("exception = %q, want %q (error %q)", f.Exception, exc, f.Error)
	}
	for _, s := range errSubs {
		if !strings.Contains(f.Error, s) {
			t.Errorf("error = %q, want it to contain %q", f.Error, s)
		}
	}
	return f
}

// procGone reports whether pid no longer runs; a zombie counts as gone
// (whoever inherited it may not reap it at once).
func procGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) S ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	st := s[i+2]
	return st == 'Z' || st == 'X'
}

// procTitle returns pid's command line as ps shows it.
func procTitle(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.Join(strings.FieldsFunc(string(b), func(r rune) bool { return r == 0 }), " "))
}

// TestSignals_Quit: QUIT lets the running job finish (a success), takes no
// new job, unregisters and exits 0.
func TestSignals_Quit(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := t.TempDir(), t.TempDir()
	handler(t, dir, "Hold", `touch "`+m+`/started"; while [ ! -e "`+m+`/go" ]; do sleep 0.02; done; touch "`+m+`/finished"`)
	handler(t, dir, "Next", `touch "`+m+`/next-ran"`)
	push(t, srv, "jobs", `{"class":"Hold","args":[]}`)
	push(t, srv, "jobs", `{"class":"Next","args":[]}`)
	d := start(t, srv, dir, "--queues", "jobs", "--interval", "0.2")
	sigWaitFile(t, filepath.Join(m, "started"))
	id := sigWorkerID(t, srv)

	d.signal(syscall.SIGQUIT)
	// Only the log shows that QUIT arrived: nothing changes in Redis.
	sigWaitLogAny(t, d, "shutdown requested", "signal=quit")
	if sigExited(d) {
		t.Fatal("daemon exited on QUIT while its job was still running")
	}
	if !sigRegistered(t, srv, id) {
		t.Error("worker unregistered while its job was still running")
	}
	if err := os.WriteFile(filepath.Join(m, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sigWaitExit(t, d, sigWithin)

	if !sigExists(filepath.Join(m, "finished")) {
		t.Error("the running handler did not run to completion")
	}
	if sigExists(filepath.Join(m, "next-ran")) {
		t.Error("a new job was taken after QUIT")
	}
	if n := getInt(t, srv, queue.StatKey(ns, "processed")); n != 1 {
		t.Errorf("stat:processed = %d, want 1", n)
	}
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 0 {
		t.Errorf("stat:failed = %d, want 0: %+v", n, failures(t, srv))
	}
	if n := sigLLen(t, srv, "jobs"); n != 1 {
		t.Errorf("queue holds %d jobs, want the second one still there", n)
	}
	sigNoWorkerKeys(t, srv, id)
}

// TestSignals_Term: TERM and INT stop the running handler at once with
// SIGTERM to its group, record it as failed, unregister and exit 0.
func TestSignals_Term(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		body string // the handler, after it announced itself
		exc  string
		errs []string
	}{
		{"TERM", syscall.SIGTERM, `while :; do sleep 0.05; done`,
			"Resque::DirtyExit", []string{"handler Loop killed by signal SIGTERM", "(worker shutting down)"}},
		{"INT", syscall.SIGINT, `while :; do sleep 0.05; done`,
			"Resque::DirtyExit", []string{"handler Loop killed by signal SIGTERM", "(worker shutting down)"}},
		// A handler that traps TERM and exits nonzero itself: documented
		// as "handler Sleep exited with status 143" (HandlerFailed).
		{"TERM-trapped", syscall.SIGTERM, `sleep 1000 & wait $!`,
			"Resqued::HandlerFailed", []string{"handler Loop exited with status 143"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			dir, m := t.TempDir(), t.TempDir()
			// The trap is set before the handler says it started: a TERM
			// sent on "started" must find it in place.
			trap := ""
			if tc.name == "TERM-trapped" {
				trap = `trap 'echo "cleaning up" >&2; exit 143' TERM; `
			}
			handler(t, dir, "Loop", trap+`touch "`+m+`/started"; `+tc.body)
			handler(t, dir, "Next", `touch "`+m+`/next-ran"`)
			push(t, srv, "jobs", `{"class":"Loop","args":[]}`)
			push(t, srv, "jobs", `{"class":"Next","args":[]}`)
			d := start(t, srv, dir, "--queues", "jobs", "--term-timeout", "30")
			sigWaitFile(t, filepath.Join(m, "started"))
			id := sigWorkerID(t, srv)

			sent := time.Now()
			d.signal(tc.sig)
			sigWaitExit(t, d, sigWithin)
			// Well under --term-timeout: the handler got SIGTERM at once.
			if took := time.Since(sent); took > 15*time.Second {
				t.Errorf("exit took %s: the handler was not sent SIGTERM at once", took)
			}

			f := sigOneFailure(t, srv, tc.exc, tc.errs...)
			if f.Worker != id || f.Queue != "jobs" || !strings.Contains(string(f.Payload), `"Loop"`) {
				t.Errorf("failure record = %+v", f)
			}
			// The shell may report its dead background job first.
			if tc.exc == "Resqued::HandlerFailed" && (len(f.Backtrace) == 0 || f.Backtrace[len(f.Backtrace)-1] != "cleaning up") {
				t.Errorf("backtrace = %q, want it to end with the trap's stderr", f.Backtrace)
			}
			if n := getInt(t, srv, queue.StatKey(ns, "processed")); n != 1 {
				t.Errorf("stat:processed = %d, want 1", n)
			}
			if sigExists(filepath.Join(m, "next-ran")) {
				t.Error("a new job was taken after " + tc.name)
			}
			if n := sigLLen(t, srv, "jobs"); n != 1 {
				t.Errorf("queue holds %d jobs, want the second one still there", n)
			}
			sigNoWorkerKeys(t, srv, id)
		})
	}
}

// TestSignals_TermIgnored: a handler that ignores SIGTERM is SIGKILLed once
// --term-timeout has passed.
func TestSignals_TermIgnored(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := t.TempDir(), t.TempDir()
	handler(t, dir, "Stubborn", `trap '' TERM; touch "`+m+`/started"; while :; do sleep 0.05; done`)
	push(t, srv, "jobs", `{"class":"Stubborn","args":[]}`)
	d := start(t, srv, dir, "--queues", "jobs", "--term-timeout", "0.5")
	sigWaitFile(t, filepath.Join(m, "started"))
	id := sigWorkerID(t, srv)

	sent := time.Now()
	d.signal(syscall.SIGTERM)
	sigWaitExit(t, d, sigWithin)
	if took := time.Since(sent); took < 500*time.Millisecond {
		t.Errorf("exit after %s, before the 0.5 s grace period was over", took)
	}
	sigOneFailure(t, srv, "Resque::DirtyExit", "handler Stubborn killed by signal SIGKILL", "(worker shutting down)")
	sigNoWorkerKeys(t, srv, id)
}

// TestSignals_SecondTerm: a second TERM during the grace period SIGKILLs
// the handler at once.
func TestSignals_SecondTerm(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := t.TempDir(), t.TempDir()
	// The trap notes the SIGTERM and carries on.
	handler(t, dir, "Stubborn", `trap 'touch "`+m+`/got-term"' TERM; touch "`+m+`/started"; while :; do sleep 0.05; done`)
	push(t, srv, "jobs", `{"class":"Stubborn","args":[]}`)
	d := start(t, srv, dir, "--queues", "jobs", "--term-timeout", "60")
	sigWaitFile(t, filepath.Join(m, "started"))
	id := sigWorkerID(t, srv)

	sent := time.Now()
	d.signal(syscall.SIGTERM)
	sigWaitFile(t, filepath.Join(m, "got-term"))
	if sigExited(d) {
		t.Fatal("daemon exited while its handler was still in its grace period")
	}
	d.signal(syscall.SIGTERM)
	sigWaitExit(t, d, 30*time.Second)
	if took := time.Since(sent); took > 30*time.Second {
		t.Errorf("exit took %s", took)
	}
	sigOneFailure(t, srv, "Resque::DirtyExit", "handler Stubborn killed by signal SIGKILL", "(worker shutting down)")
	sigNoWorkerKeys(t, srv, id)
}

// TestSignals_Grandchild: what a handler started dies with it, including a
// grandchild that ignores SIGTERM.
func TestSignals_Grandchild(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := t.TempDir(), t.TempDir()
	handler(t, dir, "Parent", `sleep 1000 & echo $! > "`+m+`/plain.pid"
(trap '' TERM; exec sleep 1000) & echo $! > "`+m+`/deaf.pid"
touch "`+m+`/started"
wait`)
	push(t, srv, "jobs", `{"class":"Parent","args":[]}`)
	d := start(t, srv, dir, "--queues", "jobs", "--term-timeout", "30")
	sigWaitFile(t, filepath.Join(m, "started"))
	id := sigWorkerID(t, srv)
	pids := map[string]int{}
	for _, name := range []string{"plain", "deaf"} {
		b, err := os.ReadFile(filepath.Join(m, name+".pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			t.Fatalf("%s.pid = %q", name, b)
		}
		if procGone(pid) {
			t.Fatalf("%s grandchild %d not running before the signal", name, pid)
		}
		pids[name] = pid
		// Killed at the end only if it is still that process: the
		// daemon should have stopped it, and its pid may be reused by
		// another test's process by then.
		if p, ok := testproc.Find(pid); ok {
			t.Cleanup(func() { p.Kill() })
		}
	}

	d.signal(syscall.SIGTERM)
	for name, pid := range pids {
		redistest.Eventually(t, sigWithin, func() bool { return procGone(pid) },
			"%s grandchild %d still running after TERM", name, pid)
	}
	sigWaitExit(t, d, sigWithin)
	sigOneFailure(t, srv, "Resque::DirtyExit", "handler Parent killed by signal SIGTERM", "(worker shutting down)")
	sigNoWorkerKeys(t, srv, id)
}

// TestSignals_Usr1: USR1 stops the running job, records it as failed and
// the worker carries on.
func TestSignals_Usr1(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := t.TempDir(), t.TempDir()
	handler(t, dir, "Loop", `touch "`+m+`/started"; while :; do sleep 0.05; done`)
	handler(t, dir, "Ok", `touch "`+m+`/ok-ran"`)
	push(t, srv, "jobs", `{"class":"Loop","args":[]}`)
	d := start(t, srv, dir, "--queues", "jobs", "--term-timeout", "0.5", "--interval", "0.2")
	sigWaitFile(t, filepath.Join(m, "started"))
	id := sigWorkerID(t, srv)

	d.signal(syscall.SIGUSR1)
	sigOneFailure(t, srv, "Resque::DirtyExit", "handler Loop killed by signal SIGTERM", "(killed by operator (USR1))")

	push(t, srv, "jobs", `{"class":"Ok","args":[]}`)
	waitProcessed(t, srv, 2)
	if !sigExists(filepath.Join(m, "ok-ran")) {
		t.Error("the job pushed after USR1 did not run")
	}
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 1 {
		t.Errorf("stat:failed = %d, want 1", n)
	}
	if sigExited(d) {
		t.Fatal("daemon exited after USR1")
	}
	if !sigRegistered(t, srv, id) {
		t.Error("worker unregistered after USR1")
	}
	d.signal(syscall.SIGQUIT)
	sigWaitExit(t, d, sigWithin)
	sigNoWorkerKeys(t, srv, id)
}

// sigPaused waits until the daemon's process title says it is paused:
// "<prefix>resque-<version>: Paused", the harness's prefix being "e2e ".
func sigPaused(t *testing.T, d *daemon) {
	t.Helper()
	pid := d.cmd.Process.Pid
	redistest.Eventually(t, sigWithin, func() bool {
		s := procTitle(pid)
		return strings.HasPrefix(s, "e2e resque-") && strings.HasSuffix(s, ": Paused")
	}, "process title never showed Paused (last %q)", procTitle(pid))
}

// sigStaysQueued watches a paused daemon for one second, five times its
// --interval of 0.2 s: the one job in q must stay there and the title must
// keep saying Paused.
func sigStaysQueued(t *testing.T, d *daemon, srv *redistest.Server, q string) {
	t.Helper()
	pid := d.cmd.Process.Pid
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if n := sigLLen(t, srv, q); n != 1 {
			t.Fatalf("queue %s holds %d jobs while paused, want 1", q, n)
		}
		if s := procTitle(pid); !strings.HasSuffix(s, ": Paused") {
			t.Fatalf("title %q while paused", s)
		}
	}
	if sigExited(d) {
		t.Fatal("paused daemon exited")
	}
}

// TestSignals_PauseResume: USR2 lets the running job finish and takes no
// new one until CONT.
func TestSignals_PauseResume(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := t.TempDir(), t.TempDir()
	handler(t, dir, "Hold", `touch "`+m+`/started-$RESQUE_JOB_ID"; while [ ! -e "`+m+`/go-$RESQUE_JOB_ID" ]; do sleep 0.02; done; touch "`+m+`/done-$RESQUE_JOB_ID"`)
	push(t, srv, "jobs", `{"class":"Hold","args":[],"id":"a"}`)
	d := start(t, srv, dir, "--queues", "jobs", "--interval", "0.2")
	sigWaitFile(t, filepath.Join(m, "started-a"))
	id := sigWorkerID(t, srv)

	d.signal(syscall.SIGUSR2)
	// The running job is not disturbed by the pause.
	if err := os.WriteFile(filepath.Join(m, "go-a"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitProcessed(t, srv, 1)
	if !sigExists(filepath.Join(m, "done-a")) {
		t.Error("the running job did not finish")
	}
	sigPaused(t, d)
	push(t, srv, "jobs", `{"class":"Hold","args":[],"id":"b"}`)
	sigStaysQueued(t, d, srv, "jobs")
	if sigExists(filepath.Join(m, "started-b")) {
		t.Fatal("a job was started while paused")
	}
	if !sigRegistered(t, srv, id) {
		t.Error("a paused worker must stay registered")
	}
	// resque-web and Resque.workers see it as paused through worker:<id>.
	marker, _ := redis.String(srv.Do(t, "GET", queue.WorkerKey(ns, id)), nil)
	if w, err := queue.ParseWorking([]byte(marker)); err != nil || !w.Paused || !strings.Contains(marker, `"class":"(paused)"`) {
		t.Errorf("worker:<id> while paused = %q (%v)", marker, err)
	}

	d.signal(syscall.SIGCONT)
	sigWaitFile(t, filepath.Join(m, "started-b"))
	if err := os.WriteFile(filepath.Join(m, "go-b"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitProcessed(t, srv, 2)
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 0 {
		t.Errorf("stat:failed = %d: %+v", n, failures(t, srv))
	}
	d.signal(syscall.SIGQUIT)
	sigWaitExit(t, d, sigWithin)
	sigNoWorkerKeys(t, srv, id)
}

// TestSignals_PauseAllFlag: Ruby Resque 2.x's pause-all-workers flag pauses
// the worker as USR2 does; deleting it resumes.
func TestSignals_PauseAllFlag(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, m := t.TempDir(), t.TempDir()
	handler(t, dir, "Ok", `touch "`+m+`/ok-ran"`)
	d := start(t, srv, dir, "--queues", "jobs", "--interval", "0.2")
	id := sigWorkerID(t, srv)

	srv.Do(t, "SET", queue.PauseAllKey(ns), "true")
	sigPaused(t, d)
	push(t, srv, "jobs", `{"class":"Ok","args":[]}`)
	sigStaysQueued(t, d, srv, "jobs")
	if sigExists(filepath.Join(m, "ok-ran")) {
		t.Fatal("a job ran while pause-all-workers was set")
	}
	if !sigRegistered(t, srv, id) {
		t.Error("a paused worker must stay registered")
	}

	srv.Do(t, "DEL", queue.PauseAllKey(ns))
	waitProcessed(t, srv, 1)
	if !sigExists(filepath.Join(m, "ok-ran")) {
		t.Error("the job did not run after the flag was deleted")
	}
	d.signal(syscall.SIGQUIT)
	sigWaitExit(t, d, sigWithin)
	sigNoWorkerKeys(t, srv, id)
}

package runner

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A persistent handler in sh: one job per stdin line, the outcome on fd 3.
const persistentSh = `#!/bin/sh
while IFS= read -r line; do
  case "$line" in
    *crash*) echo "crashing on purpose" >&2; exit 3 ;;
    *garbage*) echo "this is not JSON" >&3 ;;
    *hang*) sleep 1000 ;;
    *fail*) echo "about to fail" >&2
            echo '{"done":"failed","exception":"Boom","error":"asked to fail","backtrace":["job.sh:6"]}' >&3 ;;
    *) echo '{"progress":0.5}' >&3
       echo "{\"done\":\"ok\",\"result\":{\"pid\":$$}}" >&3 ;;
  esac
done
`

func newPersistent(t *testing.T, cfg Config, slot SlotConfig) *Slot {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Echo.persistent.sh"), []byte(persistentSh), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Dir = dir
	if cfg.TermTimeout == 0 {
		cfg.TermTimeout = 500 * time.Millisecond
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := r.NewSlot(slot)
	t.Cleanup(s.Close)
	return s
}

// job runs one job with args `[arg]` and returns the pid in its result.
func job(t *testing.T, s *Slot, arg string) (int, *Result, error) {
	t.Helper()
	run, err := s.Start(context.Background(), Job{Class: "Echo", Args: []byte(`["` + arg + `"]`)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := run.Wait()
	var r struct{ Pid int }
	_ = json.Unmarshal(res.Report.Result, &r)
	return r.Pid, res, err
}

func TestSlot_Persistent(t *testing.T) {
	t.Parallel()
	if !IsPersistent("/x/Echo.persistent.sh") || !IsPersistent("Echo.persistent") || IsPersistent("Echo.sh") {
		t.Fatal("IsPersistent")
	}
	s := newPersistent(t, Config{}, SlotConfig{MaxJobs: 3})
	a, _, err := job(t, s, "ok")
	if err != nil || a == 0 {
		t.Fatalf("first job: pid %d, %v", a, err)
	}
	b, _, _ := job(t, s, "ok")
	if b != a {
		t.Fatalf("second job ran in pid %d, want the same process %d", b, a)
	}

	// A reported failure fails that job only, with the handler's detail.
	_, res, err := job(t, s, "fail")
	var ee *ExitError
	if !errors.As(err, &ee) || !ee.Reported || res.Report.Failure == nil || res.Report.Failure.Exception != "Boom" {
		t.Fatalf("fail job: %v %+v", err, res.Report)
	}
	// The tail holds nothing of earlier jobs. (Whether this job's own
	// stderr line is in it yet is a race between two pipes: a persistent
	// job's stderr tail is best effort; its fd-3 detail is not.)
	if len(res.StderrTail) > 1 || (len(res.StderrTail) == 1 && res.StderrTail[0] != "about to fail") {
		t.Errorf("stderr tail = %q, want at most this job's line", res.StderrTail)
	}
	// That was the third job: the process is recycled.
	c, _, _ := job(t, s, "ok")
	if c == a || c == 0 {
		t.Fatalf("after MaxJobs the job ran in pid %d, want a fresh process", c)
	}
	waitGone(t, a)

	// A crash mid-job fails exactly that job; the next gets a new process.
	_, res, err = job(t, s, "crash")
	if !errors.As(err, &ee) || ee.Code != 3 || !strings.Contains(strings.Join(res.StderrTail, "|"), "crashing on purpose") {
		t.Fatalf("crash job: %v, tail %q", err, res.StderrTail)
	}
	d, _, err := job(t, s, "ok")
	if err != nil || d == c {
		t.Fatalf("after a crash: pid %d (crashed %d), %v", d, c, err)
	}

	// Garbage instead of a result line breaks the protocol: that job
	// fails and the process is replaced.
	_, _, err = job(t, s, "garbage")
	if !errors.As(err, &ee) || !strings.Contains(ee.Error(), "broke the protocol: not a JSON object") {
		t.Fatalf("garbage job: %v", err)
	}
	waitGone(t, d)
	if e, _, err := job(t, s, "ok"); err != nil || e == d {
		t.Fatalf("after garbage: pid %d, %v", e, err)
	}
}

func TestSlot_PersistentTimeoutAndStop(t *testing.T) {
	t.Parallel()
	s := newPersistent(t, Config{Timeout: 300 * time.Millisecond}, SlotConfig{})
	a, _, _ := job(t, s, "ok")
	_, _, err := job(t, s, "hang")
	var ee *ExitError
	if !errors.As(err, &ee) || !ee.TimedOut || !strings.Contains(ee.Error(), "timed out after 300ms") {
		t.Fatalf("hang job: %v", err)
	}
	waitGone(t, a)
	b, _, err := job(t, s, "ok")
	if err != nil || b == a {
		t.Fatalf("after a timeout: pid %d, %v", b, err)
	}
	run, _ := s.Start(context.Background(), Job{Class: "Echo", Args: []byte(`["hang"]`)})
	run.Stop()
	if _, err := run.Wait(); !errors.As(err, &ee) || !ee.Stopped {
		t.Fatalf("stopped job: %v", err)
	}
	waitGone(t, b)
	c, _, _ := job(t, s, "ok")
	s.Close() // EOF on stdin: the process exits by itself
	waitGone(t, c)
}

// A handler that exits after each job (recycling itself) must never make
// the next job fail: the job goes to a fresh process.
func TestSlot_PersistentExitsBetweenJobs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := "#!/bin/sh\nIFS= read -r line\necho\necho '' >&3\necho \"{\\\"done\\\":\\\"ok\\\",\\\"result\\\":$$}\" >&3\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, "Once.persistent"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Dir: dir, TermTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := r.NewSlot(SlotConfig{})
	defer s.Close()
	pids := map[string]bool{}
	for i := 0; i < 30; i++ {
		run, err := s.Start(context.Background(), Job{Class: "Once"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := run.Wait()
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		pids[string(res.Report.Result)] = true
	}
	if len(pids) != 30 {
		t.Errorf("%d processes for 30 jobs, want one each", len(pids))
	}
}

// Past MaxRSS a persistent process is recycled after its job.
func TestSlot_PersistentMaxRSS(t *testing.T) {
	t.Parallel()
	s := newPersistent(t, Config{}, SlotConfig{MaxRSS: 1}) // any process is over 1 byte
	a, _, err := job(t, s, "ok")
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, a)
	b, _, err := job(t, s, "ok")
	if err != nil || b == a {
		t.Fatalf("after passing MaxRSS: pid %d (was %d), %v", b, a, err)
	}
}

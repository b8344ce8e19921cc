package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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

// A handler that exits after each job (recycling itself) races the next
// job: one sent to it in that instant was never read (sh reads its line a
// byte at a time), so a fresh process takes it. Every job succeeds, none
// runs twice or gets another job's outcome.
func TestSlot_PersistentExitsBetweenJobs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runs := filepath.Join(t.TempDir(), "runs")
	script := `#!/bin/sh
IFS= read -r line || exit 0
id=${line#*'"id":"'}; id=${id%%'"'*}
echo "$id" >> ` + shellQuote(runs) + `
echo
echo '' >&3
echo "{\"done\":\"ok\",\"result\":{\"id\":\"$id\",\"pid\":$$}}" >&3
exit 0
`
	if err := os.WriteFile(filepath.Join(dir, "Once.persistent"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Dir: dir, TermTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := r.NewSlot(SlotConfig{})
	defer s.Close()
	pids := map[int]bool{}
	ok := 0
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("j%d", i)
		run, err := s.Start(context.Background(), Job{Class: "Once", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		res, err := run.Wait()
		switch {
		case err == nil:
			var got struct {
				ID  string
				Pid int
			}
			if json.Unmarshal(res.Report.Result, &got) != nil || got.ID != id || pids[got.Pid] {
				t.Errorf("job %s: result %s, want its own from a process of its own", id, res.Report.Result)
			}
			pids[got.Pid] = true
			ok++
		default:
			t.Errorf("job %s: %v", id, err)
		}
	}
	n := runsOf(t, runs)
	for id, c := range n {
		if c != 1 {
			t.Errorf("job %s ran %d times", id, c)
		}
	}
	if len(n) != ok || ok != 30 {
		t.Errorf("%d jobs ran, %d of 30 succeeded", len(n), ok)
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

// helperSlot returns a slot whose persistent handler Echo is the test
// binary in helperPersistent mode, the log file in which it records every
// job it takes, and the log of the runner.
func helperSlot(t *testing.T) (*Slot, string, *logSink) {
	t.Helper()
	return helperSlotArg(t, "")
}

// helperSlotArg is helperSlot with the handler's HELPER_ARG set to arg.
func helperSlotArg(t *testing.T, arg string) (*Slot, string, *logSink) {
	t.Helper()
	dir := t.TempDir()
	runs := filepath.Join(t.TempDir(), "runs")
	writeHandler(t, dir, "Echo.persistent", helper{mode: "persistent", arg: arg, file: runs})
	logger, sink := newTestLogger()
	r, err := New(Config{Dir: dir, TermTimeout: 500 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	s := r.NewSlot(SlotConfig{})
	t.Cleanup(s.Close)
	return s, runs, sink
}

// helperJob runs job id with args [what] and returns the id and pid its
// result names.
func helperJob(t *testing.T, s *Slot, id, what string) (string, int, *Result, error) {
	t.Helper()
	run, err := s.Start(context.Background(), Job{Class: "Echo", ID: id, Args: []byte(`["` + what + `"]`)})
	if err != nil {
		t.Fatalf("start job %s: %v", id, err)
	}
	res, err := run.Wait()
	var r struct {
		ID  string
		Pid int
	}
	_ = json.Unmarshal(res.Report.Result, &r)
	return r.ID, r.Pid, res, err
}

// runsOf returns how often the handler took each job, by id.
func runsOf(t *testing.T, file string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, id := range strings.Fields(string(b)) {
		n[id]++
	}
	return n
}

// A process that exits, whatever its status, before the done line of its
// job fails that job, which is never sent to another process; the next
// job gets a fresh one.
func TestSlot_PersistentExitBeforeDone(t *testing.T) {
	t.Parallel()
	for _, code := range []int{0, 5} {
		t.Run(fmt.Sprintf("Status%d", code), func(t *testing.T) {
			t.Parallel()
			s, runs, _ := helperSlot(t)
			_, first, _, err := helperJob(t, s, "a", "ok")
			if err != nil {
				t.Fatalf("job a: %v", err)
			}
			_, _, res, err := helperJob(t, s, "b", fmt.Sprintf("exit:%d", code))
			var ee *ExitError
			want := fmt.Sprintf("persistent handler Echo exited with status %d before reporting done for the job", code)
			if !errors.As(err, &ee) || ee.Error() != want {
				t.Errorf("job b: %v, want %q", err, want)
			}
			if !slices.Contains(res.StderrTail, "leaving without done") {
				t.Errorf("job b: stderr tail %q, want the handler's last words", res.StderrTail)
			}
			id, pid, _, err := helperJob(t, s, "c", "ok")
			if err != nil || id != "c" || pid == first {
				t.Errorf("job c: result id %q pid %d (the exited process was %d), %v", id, pid, first, err)
			}
			if diff := cmp.Diff(map[string]int{"a": 1, "b": 1, "c": 1}, runsOf(t, runs)); diff != "" {
				t.Errorf("runs per job (-want +got):\n%s", diff)
			}
		})
	}
}

// A done line with no job outstanding breaks the protocol: the process is
// killed and the next job gets its own outcome from a fresh process, even
// when the stray line was already waiting when that job was sent.
func TestSlot_PersistentStrayDone(t *testing.T) {
	t.Parallel()
	for _, what := range []string{"double", "partial"} {
		t.Run(what, func(t *testing.T) {
			t.Parallel()
			s, runs, sink := helperSlot(t)
			id, first, _, err := helperJob(t, s, "a", what)
			if err != nil || id != "a" {
				t.Fatalf("job a: result id %q, %v", id, err)
			}
			id, pid, _, err := helperJob(t, s, "b", "ok")
			if err != nil || id != "b" || pid == first {
				t.Errorf("job b: result id %q pid %d (the stray done came from %d), %v; want its own result from a fresh process", id, pid, first, err)
			}
			waitGone(t, first)
			if diff := cmp.Diff(map[string]int{"a": 1, "b": 1}, runsOf(t, runs)); diff != "" {
				t.Errorf("runs per job (-want +got):\n%s", diff)
			}
			found := false
			for _, e := range sink.entries(t) {
				msg, _ := e["@message"].(string)
				found = found || strings.Contains(msg, "with no job outstanding")
			}
			if !found {
				t.Errorf("no log line about the stray result line; log:\n%s", sink.buf.String())
			}
		})
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Lines with "done" in them are bounded like any others. Not parallel: it
// measures the heap.
func TestSlot_PersistentDoneLinesBounded(t *testing.T) {
	t.Run("FloodBetweenJobs", func(t *testing.T) {
		s, runs, _ := helperSlot(t)
		before := heapInUse()
		_, first, _, err := helperJob(t, s, "a", "flood")
		if err != nil {
			t.Fatalf("job a: %v", err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for alive(first) && !fileExists(runs+".flooded") {
			if time.Now().After(deadline) {
				t.Fatal("the flooding process neither finished nor was killed")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if grew := int64(heapInUse()) - int64(before); grew > 32<<20 {
			t.Errorf("heap grew by %d MiB during a flood of %d MiB between jobs", grew>>20, floodSize>>20)
		}
		waitGone(t, first)
		if id, pid, _, err := helperJob(t, s, "b", "ok"); err != nil || id != "b" || pid == first {
			t.Errorf("job b: result id %q pid %d (flooded from %d), %v", id, pid, first, err)
		}
	})
	t.Run("HugeDoneLine", func(t *testing.T) {
		s, runs, _ := helperSlot(t)
		before := heapInUse()
		_, _, _, err := helperJob(t, s, "a", "huge")
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Error() != "persistent handler Echo broke the protocol: a result line over 64 KiB" {
			t.Errorf("job a: %v", err)
		}
		if grew := int64(heapInUse()) - int64(before); grew > 32<<20 {
			t.Errorf("heap grew by %d MiB for a %d MiB line", grew>>20, floodSize>>20)
		}
		if id, _, _, err := helperJob(t, s, "b", "ok"); err != nil || id != "b" {
			t.Errorf("job b: result id %q, %v", id, err)
		}
		if diff := cmp.Diff(map[string]int{"a": 1, "b": 1}, runsOf(t, runs)); diff != "" {
			t.Errorf("runs per job (-want +got):\n%s", diff)
		}
	})
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// A handler that answers done and then exits 0 after every job, fed jobs
// in a tight loop: each job is often handed to the old process in the
// instant before its exit is noticed. That process never read it, so a
// fresh process gets it: every job succeeds, and each runs exactly once.
func TestSlot_PersistentExitAfterEveryJob(t *testing.T) {
	t.Parallel()
	s, runs, _ := helperSlotArg(t, "once")
	const n = 50
	want := map[string]int{}
	pids := map[int]string{}
	for i := range n {
		id := fmt.Sprintf("j%02d", i)
		want[id] = 1
		got, pid, _, err := helperJob(t, s, id, "ok")
		if err != nil || got != id {
			t.Errorf("job %s: result id %q, %v; want its own result", id, got, err)
			continue
		}
		if other, ok := pids[pid]; ok {
			t.Errorf("jobs %s and %s both ran in pid %d, which exits after one job", other, id, pid)
		}
		pids[pid] = id
	}
	if diff := cmp.Diff(want, runsOf(t, runs)); diff != "" {
		t.Errorf("runs per job (-want +got):\n%s", diff)
	}
}

// A process that exits after its done line, with the next job's line in
// its stdin pipe and not one byte of it read, leaves that job to a fresh
// process. One that read any of it fails the job, which is never re-sent.
// A job line larger than the pipe's buffer is only partly written when
// the process exits: the write fails with EPIPE instead of waiting for
// ever, and the bytes it did write decide as above.
func TestSlot_PersistentExitBeforeReading(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, what string
		pad        int // bytes of padding in the next job's line
		resent     bool
	}{
		{"Unread", "exitnext", 0, true},
		{"UnreadLarge", "exitnext", 1 << 20, true},
		{"PartlyRead", "exitnext:5", 0, false},
		{"PartlyReadLarge", "exitnext:5", 1 << 20, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, runs, _ := helperSlot(t)
			_, first, _, err := helperJob(t, s, "a", c.what)
			if err != nil {
				t.Fatalf("job a: %v", err)
			}
			run, err := s.Start(context.Background(), Job{Class: "Echo", ID: "b", Args: []byte(`["ok","` + strings.Repeat("p", c.pad) + `"]`)})
			if err != nil {
				t.Fatal(err)
			}
			res, err := run.Wait()
			var got struct {
				ID  string
				Pid int
			}
			_ = json.Unmarshal(res.Report.Result, &got)
			want := map[string]int{"a": 1}
			if c.resent {
				want["b"] = 1
				if err != nil || got.ID != "b" || got.Pid == first {
					t.Errorf("job b: result %s, %v; want its own result from a fresh process (not %d)", res.Report.Result, err, first)
				}
			} else {
				var ee *ExitError
				const msg = "persistent handler Echo exited with status 0 before reporting done for the job"
				if !errors.As(err, &ee) || ee.Error() != msg {
					t.Errorf("job b: %v, want %q", err, msg)
				}
			}
			if diff := cmp.Diff(want, runsOf(t, runs)); diff != "" {
				t.Errorf("runs per job (-want +got):\n%s", diff)
			}
			if id, pid, _, err := helperJob(t, s, "c", "ok"); err != nil || id != "c" || pid == first {
				t.Errorf("job c: result id %q pid %d, %v", id, pid, err)
			}
		})
	}
}

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// TestRetry: a handler asking for a retry (exit 75) runs again through the
// delayed set, sees RESQUE_ATTEMPT, and only a final failure lands in the
// failed list; policies come from the payload or --retry-config.
func TestRetry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "attempts")
	// Flaky succeeds on its third attempt; Broken never does; Three exits 3.
	handler(t, dir, "Flaky", `echo "flaky $RESQUE_ATTEMPT" >> "`+log+`"; [ "$RESQUE_ATTEMPT" -ge 3 ] || exit 75`)
	handler(t, dir, "Broken", `echo "broken $RESQUE_ATTEMPT" >> "`+log+`"; exit 75`)
	handler(t, dir, "Three", `echo "three $RESQUE_ATTEMPT" >> "`+log+`"; exit 3`)
	cfg := filepath.Join(t.TempDir(), "retry.yml")
	// The file's default replaces the built-in policy: no retries.
	os.WriteFile(cfg, []byte("default:\n  attempts: 1\nclasses:\n  Three:\n    attempts: 2\n    backoff: fixed\n    delay: 0.1\n    exit_codes: [3]\n"), 0o644)

	now := `"retry":{"attempts":3,"backoff":"fixed","delay":0.1,"jitter":0}`
	push(t, srv, "r", `{"class":"Flaky","args":[],"id":"f1",`+now+`}`)
	push(t, srv, "r", `{"class":"Broken","args":[],"id":"b1","retry":{"attempts":2,"backoff":"fixed","delay":0.1}}`)
	push(t, srv, "r", `{"class":"Three","args":[]}`)
	push(t, srv, "r", `{"class":"Broken","args":[],"id":"b2"}`) // the file's default: no retry
	d := start(t, srv, dir, "--queues", "r", "--retry-config", cfg)

	// 3 (Flaky) + 2 (Broken b1) + 2 (Three) + 1 (Broken b2) runs.
	waitProcessed(t, srv, 8)
	redistest.Eventually(t, 30*time.Second, func() bool { return len(failures(t, srv)) == 3 }, "final failures not recorded")
	if testing.Verbose() {
		t.Log(d.out.String())
	}
	b, _ := os.ReadFile(log)
	got := strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
	want := map[string]int{"flaky": 3, "broken": 3, "three": 2}
	count := map[string]int{}
	for i := 0; i+1 < len(got); i += 2 {
		count[got[i]]++
	}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%s ran %d times, want %d (log %q)", k, count[k], v, b)
		}
	}
	if !strings.Contains(string(b), "flaky 3") || !strings.Contains(string(b), "three 2") {
		t.Errorf("RESQUE_ATTEMPT not passed: %q", b)
	}
	for _, f := range failures(t, srv) {
		if strings.Contains(string(f.Payload), `"f1"`) {
			t.Errorf("Flaky succeeded on its third attempt but has a failure record: %+v", f)
		}
		if strings.Contains(string(f.Payload), `"b1"`) && !strings.Contains(f.Error, "(attempt 2)") {
			t.Errorf("final failure without its attempt: %q", f.Error)
		}
	}
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 3 {
		t.Errorf("stat:failed = %d, want only the 3 final failures", n)
	}
}

// TestRetry_TempFailDefault: without --retry-config, exit 75 is retried
// by the built-in policy. Its first retry is scheduled 30 s ± 20 % later
// (seen in the delayed set, not waited for); a job whose payload's
// "retry" shortens the delay runs to completion on its third run.
func TestRetry_TempFailDefault(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	runs := filepath.Join(t.TempDir(), "runs")
	// Twice exits 75 on its first two runs and 0 on the third.
	handler(t, dir, "Twice", `echo run >> "`+runs+`"; [ "$(wc -l < "`+runs+`")" -ge 3 ] || exit 75`)
	handler(t, dir, "Later", `exit 75`)
	push(t, srv, "r", `{"class":"Twice","args":[],"id":"t1","retry":{"attempts":5,"delay":0.1,"jitter":0}}`)
	before := time.Now()
	push(t, srv, "r", `{"class":"Later","args":[]}`)
	start(t, srv, dir, "--queues", "r")

	waitProcessed(t, srv, 4) // 3 runs of Twice, 1 of Later
	redistest.Eventually(t, 30*time.Second, func() bool {
		n, _ := redis.Int(srv.Do(t, "ZCARD", queue.DelayedScheduleKey(ns)), nil)
		return n == 1
	}, "Later's retry never scheduled")
	ts, err := redis.Int64s(srv.Do(t, "ZRANGE", queue.DelayedScheduleKey(ns), 0, -1), nil)
	if err != nil || len(ts) != 1 {
		t.Fatalf("delayed schedule = %v, %v", ts, err)
	}
	// Whole seconds, rounded down: 24 s - 1 to 36 s after the run.
	if lo, hi := before.Add(23*time.Second).Unix(), time.Now().Add(36*time.Second).Unix(); ts[0] < lo || ts[0] > hi {
		t.Errorf("Later's retry due at %d, want within %d..%d (30 s ± 20 %%)", ts[0], lo, hi)
	}
	if fs := failures(t, srv); len(fs) != 0 {
		t.Errorf("failures = %+v, want none: exit 75 asks for a retry", fs)
	}
	b, _ := os.ReadFile(runs)
	if n := strings.Count(string(b), "run"); n != 3 {
		t.Errorf("Twice ran %d times, want 3", n)
	}
}

// TestSchedule: --schedule runs resque-scheduler's recurring jobs.
func TestSchedule(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Tick", `exit 0`)
	sched := filepath.Join(t.TempDir(), "schedule.yml")
	os.WriteFile(sched, []byte("tick:\n  every: 1s\n  class: Tick\n  queue: ticks\n  args: [1]\n"), 0o644)
	start(t, srv, dir, "--queues", "ticks", "--schedule", sched)
	waitProcessed(t, srv, 2)
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 0 {
		t.Errorf("failed = %d", n)
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("tick:\n  every: 1s\n"), 0o644)
	if _, stderr, code := cli(t, srv, "--handlers", dir, "--queues", "ticks", "--schedule", bad); code != 2 || !strings.Contains(stderr, "tick") {
		t.Errorf("bad schedule: exit %d, %q", code, stderr)
	}
}

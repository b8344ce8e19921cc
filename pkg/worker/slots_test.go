package worker_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
)

// TestWorker_ChainedSlotsFreedOnce: a worker draining jobs of a limited
// class takes each next job in the step that records the last one's
// outcome, and that step frees the last job's slot. The worker then sends
// no release of its own for it: only the last job, after which nothing
// was taken, is released on its own. Every job runs once and no slot is
// left held.
func TestWorker_ChainedSlotsFreedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mon := startMonitor(t, e.srv)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if err := e.q.Enqueue(ctx, "q", []byte(`{"class":"Log","args":[`+string(rune('0'+i))+`]}`), queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config(t, 4343)
	cfg.Interval = -1 // drain, then stop
	cfg.Limits = queue.NewLimits(map[string]queue.ClassLimit{"Log": {Concurrency: 2}})
	r := start(t, cfg)
	if err := r.wait(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if runs := e.runLines(); len(runs) != 4 {
		t.Fatalf("handlers ran %d times, want 4: %q", len(runs), runs)
	}
	slotKey := regexp.QuoteMeta(queue.ConcurrencyKey(e.ns, "Log"))
	// The release script with its one key, by the slot member it frees
	// (a first EVALSHA answered NOSCRIPT is sent again as EVAL: one
	// release). The outcome-and-next-job step declares twelve keys.
	release := regexp.MustCompile(`(?i)"eval(?:sha)?" "(?:[^"\\]|\\.)*" "1" "` + slotKey + `" "([^"]+)"`)
	freed := map[string]bool{}
	for _, l := range mon.sent(release.MatchString) {
		freed[release.FindStringSubmatch(l)[1]] = true
	}
	if len(freed) != 1 {
		t.Errorf("slots of %d jobs released on their own, want 1 (the last job's): %v", len(freed), freed)
	}
	if n, _ := redis.Int(e.srv.Do(t, "ZCARD", queue.ConcurrencyKey(e.ns, "Log")), nil); n != 0 {
		t.Errorf("%d slots left held", n)
	}
}

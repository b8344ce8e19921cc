package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
	"github.com/resqued/resqued/pkg/worker"
)

// An idle worker whose wait found every queue empty sent a reserve after
// each wait, though it could take nothing. It sends one every other wait
// now (for the pause-all-workers flag and the lease), and still takes a
// job at once and notices the flag while idle.
func TestWorker_IdleReservesEveryOtherWait(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := startMonitor(t, e.srv)
	cfg := e.config(t, 303)
	cfg.Interval = 300 * time.Millisecond // well above Redis's 100 ms timeout granularity
	cfg.LeaseTTL = time.Minute            // the lease is not what makes it reserve here
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	count := func() (waits, reserves int) {
		return len(m.sent(contains(`"BLMOVE"`))), len(m.sent(func(l string) bool {
			return strings.Contains(l, `"EVAL`) && strings.Contains(l, `pause-all-workers"`) && strings.Contains(l, `:queue:q"`)
		}))
	}
	redistest.Eventually(t, 20*time.Second, func() bool { n, _ := count(); return n >= 10 }, "never saw 10 waits")
	waits, reserves := count()
	// One reserve per two waits, give or take the first and a NOSCRIPT
	// retry; one per wait would be about 10.
	if reserves > waits/2+3 {
		t.Errorf("%d reserves over %d waits of an idle worker, want about one per two waits", reserves, waits)
	}

	// A job pushed while it waits runs (the wait returned: a reserve).
	e.enqueue(t, "q", "Log", `["idle"]`)
	redistest.Eventually(t, 10*time.Second, func() bool { return len(e.runLines()) == 1 }, "the pushed job never ran")

	// The pause-all-workers flag is noticed while idle: the worker
	// writes its paused marker.
	e.srv.Do(t, "SET", queue.PauseAllKey(e.ns), "true")
	redistest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(e.get(t, queue.WorkerKey(e.ns, w.ID())), `"paused"`)
	}, "an idle worker never noticed the pause-all-workers flag")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A tracked job pushed to an idle worker's empty queue is the job its
// wait (BLMOVE) hands back, so the reserve that follows knows its id and
// marks it running in its own script: no separate mark, one round trip
// less between the push and the handler's start.
func TestWorker_PickupMarksRunningInReserve(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := startMonitor(t, e.srv)
	cfg := e.config(t, 305)
	cfg.Interval = 5 * time.Second
	cfg.LeaseTTL = time.Minute
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	redistest.Eventually(t, 10*time.Second, func() bool { return len(m.sent(contains(`"BLMOVE"`))) > 0 }, "the worker never waited")
	p, _ := queue.Encode("Log", []byte(`["pickup"]`), "tok-pickup")
	if err := e.q.Enqueue(ctx, "q", p, queue.EnqueueOptions{Track: true, ID: "tok-pickup"}); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, 10*time.Second, func() bool {
		s, err := e.st.Get(ctx, "tok-pickup")
		return err == nil && s.Code == status.Complete
	}, "the pushed job never completed")
	key := status.Key(e.ns, "tok-pickup")
	// The enqueue's waiting, then running, then complete.
	redistest.Eventually(t, 10*time.Second, func() bool { return len(m.writes(key)) >= 3 }, "status writes never seen")
	if ws := m.writes(key); len(ws) != 3 || !strings.Contains(ws[1], `\"status\":2`) {
		t.Errorf("%d status writes, want waiting, running, complete:\n%s", len(ws), strings.Join(ws, "\n"))
	}
	for _, l := range m.sent(runningMark.MatchString) {
		t.Errorf("a separate running mark was sent for the picked-up job: %s", l)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

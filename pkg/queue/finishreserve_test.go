package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// FinishAndReserve records one job's outcome and takes the next in one
// script: the counters, the failure record and the tracked status of the
// first, the second in worker:<id> (queues in priority order) and, once
// confirmed, its running status.
func TestFetcher_FinishAndReserve(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	id := "h:1:high,low"
	for _, j := range []struct{ q, tok string }{{"low", "t1"}, {"low", "t3"}, {"high", "t2"}} {
		p, _ := queue.Encode("A", []byte(`[1]`), j.tok)
		if err := c.Enqueue(ctx, j.q, p, queue.EnqueueOptions{Track: true, ID: j.tok}); err != nil {
			t.Fatal(err)
		}
	}
	f := leasedFetcher(t, c, id)
	queues := []string{"high", "low"}
	r, err := f.Reserve(ctx, queues, queue.ReserveOptions{})
	if err != nil || r.ID != "t2" {
		t.Fatalf("reserve = %+v %v", r, err)
	}
	_ = r.Decode()

	// A failure, and the next job, t1 from "low" ("high" is empty now).
	ok, next, err := f.FinishAndReserve(ctx, r, queue.Outcome{Exception: "Boom", Error: "bad"}, queues, queue.ReserveOptions{DeferRunning: true})
	if !ok || err != nil || next == nil || next.ID != "t1" || next.Queue != "low" {
		t.Fatalf("FinishAndReserve = %v %+v %v", ok, next, err)
	}
	if err := f.ConfirmRunning(); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{
		queue.StatKey(ns, "processed"): 1, queue.StatKey(ns, "failed"): 1,
		queue.WorkerStatKey(ns, "processed", id): 1, queue.WorkerStatKey(ns, "failed", id): 1,
	} {
		if n, _ := redis.Int(srv.Do(t, "GET", key), nil); n != want {
			t.Errorf("%s = %d, want %d", key, n, want)
		}
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.FailedKey(ns)), nil); n != 1 {
		t.Errorf("failed list holds %d, want 1", n)
	}
	st := status.New(srv.Pool(t), ns)
	for tok, want := range map[string]status.Code{"t2": status.Failed, "t1": status.Running, "t3": status.Waiting} {
		if s, err := st.Get(ctx, tok); err != nil || s.Code != want {
			t.Errorf("status %s = %+v %v, want %v", tok, s, err, want)
		}
	}
	rec, _ := redis.String(srv.Do(t, "GET", queue.WorkerKey(ns, id)), nil)
	if w, err := queue.ParseWorking([]byte(rec)); err != nil || w.Queue != "low" || queue.StatusID(w.Payload) != "t1" {
		t.Errorf("worker:<id> = %s (%v), want t1's record", rec, err)
	}

	// A success, then t3; then a success with nothing left: ErrNoJob,
	// recorded all the same, and worker:<id> empty.
	_ = next.Decode()
	ok, next, err = f.FinishAndReserve(ctx, next, queue.Outcome{}, queues, queue.ReserveOptions{})
	if !ok || err != nil || next == nil || next.ID != "t3" {
		t.Fatalf("FinishAndReserve = %v %+v %v", ok, next, err)
	}
	_ = next.Decode()
	ok, none, err := f.FinishAndReserve(ctx, next, queue.Outcome{}, queues, queue.ReserveOptions{})
	if !ok || none != nil || !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("FinishAndReserve on empty queues = %v %+v %v, want recorded, ErrNoJob", ok, none, err)
	}
	if n, _ := redis.Int(srv.Do(t, "GET", queue.StatKey(ns, "processed")), nil); n != 3 {
		t.Errorf("processed = %d, want 3", n)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", queue.WorkerKey(ns, id)), nil); n != 0 {
		t.Error("worker:<id> still exists after the last outcome")
	}
	for _, tok := range []string{"t1", "t3"} {
		if s, _ := st.Get(ctx, tok); s.Code != status.Complete {
			t.Errorf("status %s = %v, want complete", tok, s.Code)
		}
	}
}

// Under the pause-all-workers flag the outcome is recorded and nothing
// is taken; once another process holds the worker id, neither happens.
func TestFetcher_FinishAndReservePausedAndTakenOver(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	id := "h:2:q"
	for i := 0; i < 3; i++ {
		p, _ := queue.Encode("A", []byte(`[1]`), "")
		if err := c.Enqueue(ctx, "q", p, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f := leasedFetcher(t, c, id)
	r, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Do(t, "SET", queue.PauseAllKey(ns), "true")
	ok, next, err := f.FinishAndReserve(ctx, r, queue.Outcome{}, []string{"q"}, queue.ReserveOptions{})
	if !ok || next != nil || !errors.Is(err, queue.ErrPausedAll) {
		t.Fatalf("paused: FinishAndReserve = %v %+v %v, want recorded, ErrPausedAll", ok, next, err)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "q")), nil); n != 2 {
		t.Errorf("queue holds %d, want 2 (nothing taken while paused)", n)
	}
	srv.Do(t, "DEL", queue.PauseAllKey(ns))

	r, err = f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Do(t, "SET", queue.OwnerKey(ns, id), "someone-else", "PX", 60000)
	ok, next, err = f.FinishAndReserve(ctx, r, queue.Outcome{}, []string{"q"}, queue.ReserveOptions{})
	if ok || next != nil || !errors.Is(err, queue.ErrNotOwner) {
		t.Fatalf("taken over: FinishAndReserve = %v %+v %v, want ErrNotOwner", ok, next, err)
	}
	if n, _ := redis.Int(srv.Do(t, "GET", queue.StatKey(ns, "processed")), nil); n != 1 {
		t.Errorf("processed = %d, want 1 (nothing recorded under another's lease)", n)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "q")), nil); n != 1 {
		t.Errorf("queue holds %d, want 1", n)
	}
}

// The reserve and outcome scripts extend the lease they check, so a
// busy worker needs no renewals of its own.
func TestLease_ExtendedByScripts(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	id := "h:3:q"
	lease := c.NewLease(id, "", 15*time.Second)
	if _, err := lease.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	acquired := lease.Renewed()
	// Shorten the key's life, as if time had passed.
	srv.Do(t, "PEXPIRE", queue.OwnerKey(ns, id), 2000)
	f := lease.Fetcher()
	defer f.Close()
	if _, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{}); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("reserve = %v, want ErrNoJob", err)
	}
	if ms, _ := redis.Int(srv.Do(t, "PTTL", queue.OwnerKey(ns, id)), nil); ms <= 2000 {
		t.Errorf("lease PTTL after a reserve = %d ms, want extended to about 15000", ms)
	}
	if !lease.Renewed().After(acquired) {
		t.Errorf("Renewed() = %v, not after the acquire's %v", lease.Renewed(), acquired)
	}
}

// leasedFetcher is a Fetcher for worker id under a lease it holds.
func leasedFetcher(t *testing.T, c *queue.Client, id string) *queue.Fetcher {
	t.Helper()
	lease := c.NewLease(id, "", 15*time.Second)
	if _, err := lease.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := lease.Fetcher()
	t.Cleanup(func() { f.Close() })
	return f
}

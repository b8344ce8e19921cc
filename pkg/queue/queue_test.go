package queue_test

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

func newClient(t *testing.T) (*redistest.Server, *queue.Client, string) {
	t.Helper()
	srv := redistest.Start(t)
	ns := "resque"
	return srv, queue.New(srv.Pool(t), ns), ns
}

func TestClient_Enqueue(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	payload := []byte(`{"class":"A","args":[1],"id":"tok"}`)
	if err := c.Enqueue(ctx, "high", payload, queue.EnqueueOptions{Track: true, ID: "tok"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := redis.Strings(srv.Do(t, "SMEMBERS", queue.QueuesKey(ns)), nil); len(got) != 1 || got[0] != "high" {
		t.Errorf("queues = %v", got)
	}
	if got, _ := redis.String(srv.Do(t, "LINDEX", queue.QueueKey(ns, "high"), 0), nil); got != string(payload) {
		t.Errorf("queue head = %s", got)
	}
	st, _ := redis.String(srv.Do(t, "GET", status.Key(ns, "tok")), nil)
	if !regexp.MustCompile(`^\{"status":1,"updated":\d+,"started":\d+\}$`).MatchString(st) {
		t.Errorf("status = %s", st)
	}
	if ttl, _ := redis.Int(srv.Do(t, "TTL", status.Key(ns, "tok")), nil); ttl != -1 {
		t.Errorf("waiting status ttl = %d, want none", ttl)
	}
	for _, bad := range []string{"", "a,b", "a:b", "a b"} {
		if err := c.Enqueue(ctx, bad, payload, queue.EnqueueOptions{}); err == nil {
			t.Errorf("queue name %q accepted", bad)
		}
	}
}

func TestFetcher_Reserve(t *testing.T) {
	ctx := context.Background()
	t.Run("Priority", func(t *testing.T) {
		_, c, _ := newClient(t)
		for _, q := range []string{"low", "mid", "high"} {
			_ = c.Enqueue(ctx, q, []byte(`{"class":"`+q+`"}`), queue.EnqueueOptions{})
		}
		f := c.Fetcher()
		defer f.Close()
		for _, timeout := range []time.Duration{0, time.Second, time.Second} {
			q, _, err := f.Reserve(ctx, []string{"high", "mid", "low"}, timeout)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(q)
		}
		// Order must have been high, mid, low: queues are now empty.
		if _, _, err := f.Reserve(ctx, []string{"high", "mid", "low"}, 0); !errors.Is(err, queue.ErrNoJob) {
			t.Fatalf("err = %v, want ErrNoJob", err)
		}
	})
	t.Run("OrderEachTime", func(t *testing.T) {
		_, c, _ := newClient(t)
		_ = c.Enqueue(ctx, "low", []byte(`{"class":"L1"}`), queue.EnqueueOptions{})
		_ = c.Enqueue(ctx, "low", []byte(`{"class":"L2"}`), queue.EnqueueOptions{})
		f := c.Fetcher()
		defer f.Close()
		q, _, _ := f.Reserve(ctx, []string{"high", "low"}, time.Second)
		if q != "low" {
			t.Fatalf("first = %s", q)
		}
		_ = c.Enqueue(ctx, "high", []byte(`{"class":"H"}`), queue.EnqueueOptions{})
		q, p, _ := f.Reserve(ctx, []string{"high", "low"}, time.Second)
		if q != "high" || string(p) != `{"class":"H"}` {
			t.Fatalf("after a high job arrived, got %s %s", q, p)
		}
	})
	t.Run("Blocks", func(t *testing.T) {
		srv, c, _ := newClient(t)
		f := c.Fetcher()
		defer f.Close()
		got := make(chan string, 1)
		go func() {
			q, _, err := f.Reserve(ctx, []string{"a", "b"}, 30*time.Second)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- q
		}()
		// Push only once the fetcher is blocked, so this tests the wake-up.
		redistest.Eventually(t, 10*time.Second, func() bool {
			s, _ := redis.String(srv.Do(t, "INFO", "clients"), nil)
			return regexp.MustCompile(`blocked_clients:1`).MatchString(s)
		}, "fetcher never blocked")
		_ = c.Enqueue(ctx, "b", []byte(`{"class":"B"}`), queue.EnqueueOptions{})
		select {
		case q := <-got:
			if q != "b" {
				t.Fatalf("got %s", q)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("blocked reserve did not wake on push")
		}
	})
	t.Run("CancelUnblocks", func(t *testing.T) {
		srv, c, ns := newClient(t)
		f := c.Fetcher()
		defer f.Close()
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, _, err := f.Reserve(cctx, []string{"a"}, time.Minute)
			done <- err
		}()
		redistest.Eventually(t, 10*time.Second, func() bool {
			s, _ := redis.String(srv.Do(t, "INFO", "clients"), nil)
			return regexp.MustCompile(`blocked_clients:1`).MatchString(s)
		}, "fetcher never blocked")
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, queue.ErrNoJob) {
				t.Fatalf("err = %v, want ErrNoJob", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("cancel did not unblock reserve")
		}
		// The connection is still usable and nothing was lost.
		_ = c.Enqueue(ctx, "a", []byte(`{"class":"A"}`), queue.EnqueueOptions{})
		if q, _, err := f.Reserve(ctx, []string{"a"}, time.Second); err != nil || q != "a" {
			t.Fatalf("reserve after cancel: %s %v", q, err)
		}
		if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "a")), nil); n != 0 {
			t.Fatalf("queue length %d", n)
		}
	})
}

func TestClient_WorkerLifecycle(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	id := queue.WorkerID("vm", 1704, []string{"selfcheck_live"})
	if err := c.RegisterWorker(ctx, id, time.Date(2026, 11, 27, 8, 50, 2, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if got, _ := redis.String(srv.Do(t, "GET", queue.WorkerStartedKey(ns, id)), nil); got != "2026-11-27 08:50:02 +0000" {
		t.Errorf("started = %q", got)
	}
	beat, _ := redis.String(srv.Do(t, "HGET", queue.HeartbeatKey(ns), id), nil)
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$`).MatchString(beat) {
		t.Errorf("heartbeat = %q, want Ruby's iso8601", beat)
	}
	if ok, _ := redis.Bool(srv.Do(t, "SISMEMBER", queue.WorkersKey(ns), id), nil); !ok {
		t.Error("not in workers set")
	}
	payload := []byte(`{"class":"Sleep","args":[6]}`)
	if err := c.StartJob(ctx, id, "selfcheck_live", payload, time.Date(2026, 11, 27, 8, 50, 2, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	// Byte for byte what Ruby Resque wrote (testdata/compat/worker/ruby.json).
	if got, _ := redis.String(srv.Do(t, "GET", queue.WorkerKey(ns, id)), nil); got != `{"queue":"selfcheck_live","run_at":"2026-11-27T08:50:02Z","payload":{"class":"Sleep","args":[6]}}` {
		t.Errorf("worker value = %s", got)
	}
	f := queue.NewFailure(time.Date(2026, 11, 27, 8, 50, 9, 0, time.UTC), payload, "RuntimeError", "bad", []string{"l1"}, id, "selfcheck_live")
	if err := c.FinishJob(ctx, id, f); err != nil {
		t.Fatal(err)
	}
	if err := c.StartJob(ctx, id, "selfcheck_live", payload, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishJob(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		queue.StatKey(ns, "processed"):           "2",
		queue.StatKey(ns, "failed"):              "1",
		queue.WorkerStatKey(ns, "processed", id): "2",
		queue.WorkerStatKey(ns, "failed", id):    "1",
	} {
		if got, _ := redis.String(srv.Do(t, "GET", key), nil); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", queue.WorkerKey(ns, id)), nil); n != 0 {
		t.Error("worker:<id> left after job")
	}
	recs, err := c.Failures(ctx, 0, -1)
	if err != nil || len(recs) != 1 || recs[0].Worker != id || recs[0].FailedAt != "2026/11/27 08:50:09 UTC" {
		t.Fatalf("failures = %+v, %v", recs, err)
	}
	if err := c.UnregisterWorker(ctx, id); err != nil {
		t.Fatal(err)
	}
	keys, _ := redis.Strings(srv.Do(t, "KEYS", "*"), nil)
	want := map[string]bool{queue.StatKey(ns, "processed"): true, queue.StatKey(ns, "failed"): true, queue.FailedKey(ns): true}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("key %s left after unregister", k)
		}
	}
}

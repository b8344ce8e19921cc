package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

func wakeLen(tb testing.TB, srv *redistest.Server, ns string) int {
	tb.Helper()
	n, err := redis.Int(srv.Do(tb, "LLEN", queue.SchedulerWakeKey(ns)), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// Delay and RetryJob push a wake token only for an item due before
// everything still to come, and the wake list never holds more than one.
func TestWakeToken(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	delay := func(at time.Time) {
		t.Helper()
		if err := c.Delay(ctx, at, "q", []byte(`{"class":"A","args":[]}`), queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	take := func() { srv.Do(t, "DEL", queue.SchedulerWakeKey(ns)) }
	now := time.Now()

	delay(now.Add(time.Hour)) // the first: due before nothing else
	if n := wakeLen(t, srv, ns); n != 1 {
		t.Fatalf("after the first delay the wake list holds %d, want 1", n)
	}
	if ttl, _ := redis.Int(srv.Do(t, "TTL", queue.SchedulerWakeKey(ns)), nil); ttl <= 0 {
		t.Fatalf("wake token TTL = %d, want an expiry", ttl)
	}
	take()
	delay(now.Add(2 * time.Hour)) // later than the first: no wake
	delay(now.Add(time.Hour))     // the same second: no wake
	if n := wakeLen(t, srv, ns); n != 0 {
		t.Fatalf("later items pushed %d wake tokens", n)
	}
	// Earlier ones, many of them: one token.
	for i := 1; i <= 50; i++ {
		delay(now.Add(time.Hour - time.Duration(i)*time.Second))
		if n := wakeLen(t, srv, ns); n != 1 {
			t.Fatalf("after %d earlier delays the wake list holds %d, want 1", i, n)
		}
	}
	take()
	// Already due: always wakes, even with due items waiting.
	delay(now.Add(-time.Minute))
	take()
	delay(now.Add(-2 * time.Minute))
	if n := wakeLen(t, srv, ns); n != 1 {
		t.Fatalf("a due delay pushed %d wake tokens, want 1", n)
	}
	take()

	// A retry due now wakes; one due after the first future item does not.
	retry := func(at time.Time) {
		t.Helper()
		if err := c.Enqueue(ctx, "r", []byte(`{"class":"B","args":[1]}`), queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		r, err := c.Fetcher("h:1:r").Reserve(ctx, []string{"r"}, queue.ReserveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Decode(); err != nil {
			t.Fatal(err)
		}
		if ok, err := c.RetryJob(ctx, r, at); !ok || err != nil {
			t.Fatalf("RetryJob = %v, %v", ok, err)
		}
	}
	retry(now.Add(3 * time.Hour))
	if n := wakeLen(t, srv, ns); n != 0 {
		t.Fatalf("a late retry pushed %d wake tokens", n)
	}
	retry(now)
	if n := wakeLen(t, srv, ns); n != 1 {
		t.Fatalf("a due retry left %d wake tokens, want 1", n)
	}
}

// ScheduleHead splits the schedule's head at now: what is due, and when
// the next item is.
func TestScheduleHead(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	for _, ts := range []int{100, 200, 300} {
		srv.Do(t, "ZADD", queue.DelayedScheduleKey(ns), ts, ts)
	}
	due, next, err := c.ScheduleHead(ctx, time.Unix(200, 0), 0, 10)
	if err != nil || len(due) != 2 || due[0] != "100" || due[1] != "200" || !next.Equal(time.Unix(300, 0)) {
		t.Fatalf("ScheduleHead = %q, %v, %v", due, next, err)
	}
	due, next, err = c.ScheduleHead(ctx, time.Unix(200, 0), 1, 10)
	if err != nil || len(due) != 1 || due[0] != "200" || !next.Equal(time.Unix(300, 0)) {
		t.Fatalf("ScheduleHead skip 1 = %q, %v, %v", due, next, err)
	}
	// More due than asked for: the next is not known.
	due, next, err = c.ScheduleHead(ctx, time.Unix(300, 0), 0, 2)
	if err != nil || len(due) != 2 || !next.IsZero() {
		t.Fatalf("ScheduleHead n 2 = %q, %v, %v", due, next, err)
	}
	due, next, err = c.ScheduleHead(ctx, time.Unix(50, 0), 0, 10)
	if err != nil || len(due) != 0 || !next.Equal(time.Unix(100, 0)) {
		t.Fatalf("ScheduleHead early = %q, %v, %v", due, next, err)
	}
	due, next, err = c.ScheduleHead(ctx, time.Unix(400, 0), 0, 10)
	if err != nil || len(due) != 3 || !next.IsZero() {
		t.Fatalf("ScheduleHead late = %q, %v, %v", due, next, err)
	}
}

// Waker.Wait takes a token, times out without one, and returns at once
// when its context is cancelled mid-BLPOP.
func TestWaker(t *testing.T) {
	srv, c, ns := newClient(t)
	w := c.Waker()
	defer w.Close()
	ctx := context.Background()
	if woken, err := w.Wait(ctx, 10*time.Millisecond); woken || err != nil {
		t.Fatalf("Wait on an empty list = %v, %v", woken, err)
	}
	srv.Do(t, "RPUSH", queue.SchedulerWakeKey(ns), "1")
	if woken, err := w.Wait(ctx, time.Hour); !woken || err != nil {
		t.Fatalf("Wait with a token = %v, %v", woken, err)
	}
	if n := wakeLen(t, srv, ns); n != 0 {
		t.Fatalf("the token was not taken: %d left", n)
	}

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := w.Wait(cctx, time.Hour); done <- err }()
	redistest.Eventually(t, 10*time.Second, func() bool {
		return srv.Info(t, "clients")["blocked_clients"] == "1"
	}, "the BLPOP never blocked")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("cancelled Wait = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled Wait did not return")
	}
	// The connection is still good for the next wait.
	srv.Do(t, "RPUSH", queue.SchedulerWakeKey(ns), "1")
	if woken, err := w.Wait(ctx, time.Hour); !woken || err != nil {
		t.Fatalf("Wait after a cancel = %v, %v", woken, err)
	}
}

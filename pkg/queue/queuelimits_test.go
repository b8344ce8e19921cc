package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// zcard is the size of the sorted set key.
func zcard(t *testing.T, srv *redistest.Server, key string) int {
	t.Helper()
	n, err := redis.Int(srv.Do(t, "ZCARD", key), nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A queue at its concurrency limit is passed over whole: the second
// worker takes from the next queue, and the held-back job runs once the
// first job's slot frees. The limit holds whatever the jobs' classes.
func TestFetcher_QueueLimit(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	lim := queue.NewLimits(nil).WithQueues(map[string]int{"reports": 1, "free": 0})
	if got := lim.Queues(); len(got) != 1 || got[0] != "reports" {
		t.Fatalf("limited queues = %v, want [reports]", got)
	}
	opt := queue.ReserveOptions{Limits: lim}
	push(t, c, "reports", `{"class":"A","args":[1]}`, `{"class":"B","args":[2]}`)
	push(t, c, "other", `{"class":"A","args":[3]}`)
	queues := []string{"reports", "other"}
	f1, f2 := leasedFetcher(t, c, "h:1:q"), leasedFetcher(t, c, "h:2:q")

	r1 := mustReserve(t, f1, queues, opt)
	if string(r1.Payload) != `{"class":"A","args":[1]}` || len(r1.Slots) != 1 || !r1.Slots[0].Queue || r1.Slots[0].Limit != "reports" {
		t.Fatalf("first reserve = %s slots %+v, want A [1] with a slot of queue reports", r1.Payload, r1.Slots)
	}
	if n := zcard(t, srv, queue.QueueConcurrencyKey(ns, "reports")); n != 1 {
		t.Errorf("slots of queue reports = %d, want 1", n)
	}
	if n := zcard(t, srv, queue.ConcurrencyKey(ns, "reports")); n != 0 {
		t.Errorf("a class named reports holds %d slots, want none (queue and class limits are apart)", n)
	}
	r2 := mustReserve(t, f2, queues, opt)
	if string(r2.Payload) != `{"class":"A","args":[3]}` || len(r2.Slots) != 0 {
		t.Fatalf("second reserve = %s slots %+v, want A [3] from other, without a slot", r2.Payload, r2.Slots)
	}
	if _, err := c.FinishJob(ctx, r2, queue.Outcome{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f2.Reserve(ctx, queues, opt); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("reserve with only the full queue's job left = %v, want ErrNoJob", err)
	}
	if got, _ := redis.Strings(srv.Do(t, "LRANGE", queue.QueueKey(ns, "reports"), 0, -1), nil); len(got) != 1 || got[0] != `{"class":"B","args":[2]}` {
		t.Errorf("reports = %q, want B [2] still queued", got)
	}
	use, err := c.LimitsInUse(ctx, lim, queues)
	if err != nil || len(use) != 1 || use[0].Limit != "queue:reports" || use[0].Queue != "reports" || use[0].InUse != 1 || use[0].Concurrency != 1 || use[0].Waiting != 1 {
		t.Errorf("LimitsInUse = %+v, %v; want queue:reports 1/1 with 1 waiting", use, err)
	}
	if _, err := c.FinishJob(ctx, r1, queue.Outcome{}); err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseSlots(ctx, nil, r1.Slots); err != nil {
		t.Fatal(err)
	}
	r2 = reserveUntil(t, f2, queues, opt, 5*time.Second)
	if string(r2.Payload) != `{"class":"B","args":[2]}` || len(r2.Slots) != 1 {
		t.Fatalf("after the slot freed: %s slots %+v, want B [2] with its queue's slot", r2.Payload, r2.Slots)
	}
}

// A job whose class and queue are both limited takes two slots in one
// step, and waits while either is full; freeing its slots frees both.
func TestFetcher_QueueAndClassLimit(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	queues := []string{"reports"}
	classKey, queueKey := queue.ConcurrencyKey(ns, "Slow"), queue.QueueConcurrencyKey(ns, "reports")

	t.Run("QueueFull", func(t *testing.T) {
		// The class has room, the queue not: nothing is taken, and no
		// class slot either.
		opt := queue.ReserveOptions{Limits: queue.NewLimits(map[string]queue.ClassLimit{"Slow": {Concurrency: 2}}).WithQueues(map[string]int{"reports": 1})}
		push(t, c, "reports", `{"class":"Slow","args":[1]}`, `{"class":"Slow","args":[2]}`)
		f1, f2 := leasedFetcher(t, c, "h:1:q"), leasedFetcher(t, c, "h:2:q")
		r1 := mustReserve(t, f1, queues, opt)
		if len(r1.Slots) != 2 || r1.Slots[0].Limit != "Slow" || r1.Slots[0].Queue || r1.Slots[1].Limit != "reports" || !r1.Slots[1].Queue {
			t.Fatalf("slots = %+v, want Slow's and queue reports'", r1.Slots)
		}
		if a, b := zcard(t, srv, classKey), zcard(t, srv, queueKey); a != 1 || b != 1 {
			t.Errorf("slots held: class %d, queue %d; want 1 and 1", a, b)
		}
		if _, err := f2.Reserve(ctx, queues, opt); !errors.Is(err, queue.ErrNoJob) {
			t.Fatalf("reserve at the queue's limit = %v, want ErrNoJob", err)
		}
		if a, b := zcard(t, srv, classKey), zcard(t, srv, queueKey); a != 1 || b != 1 {
			t.Errorf("after a refused reserve: class %d, queue %d slots; want 1 and 1 (nothing taken)", a, b)
		}
		if _, err := c.FinishJob(ctx, r1, queue.Outcome{}); err != nil {
			t.Fatal(err)
		}
		if err := c.ReleaseSlots(ctx, nil, r1.Slots); err != nil {
			t.Fatal(err)
		}
		if a, b := zcard(t, srv, classKey), zcard(t, srv, queueKey); a != 0 || b != 0 {
			t.Errorf("after release: class %d, queue %d slots; want both freed", a, b)
		}
		r2 := reserveUntil(t, f2, queues, opt, 5*time.Second)
		if string(r2.Payload) != `{"class":"Slow","args":[2]}` {
			t.Fatalf("took %s, want Slow [2]", r2.Payload)
		}
		if _, err := c.FinishJob(ctx, r2, queue.Outcome{}); err != nil {
			t.Fatal(err)
		}
		if err := c.ReleaseSlots(ctx, nil, r2.Slots); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ClassFull", func(t *testing.T) {
		// The queue has room, the class not: its job waits, a job of
		// another class behind it on the queue runs.
		opt := queue.ReserveOptions{Limits: queue.NewLimits(map[string]queue.ClassLimit{"Slow": {Concurrency: 1}}).WithQueues(map[string]int{"reports": 3})}
		push(t, c, "reports", `{"class":"Slow","args":[3]}`, `{"class":"Slow","args":[4]}`, `{"class":"Fast","args":[5]}`)
		f1, f2 := leasedFetcher(t, c, "h:3:q"), leasedFetcher(t, c, "h:4:q")
		r1 := mustReserve(t, f1, queues, opt)
		if string(r1.Payload) != `{"class":"Slow","args":[3]}` || len(r1.Slots) != 2 {
			t.Fatalf("first reserve = %s slots %+v, want Slow [3] with two slots", r1.Payload, r1.Slots)
		}
		r2 := mustReserve(t, f2, queues, opt)
		if string(r2.Payload) != `{"class":"Fast","args":[5]}` || len(r2.Slots) != 1 || !r2.Slots[0].Queue {
			t.Fatalf("second reserve = %s slots %+v, want Fast [5] with its queue's slot only", r2.Payload, r2.Slots)
		}
		f3 := leasedFetcher(t, c, "h:5:q")
		if r, err := f3.Reserve(ctx, queues, opt); !errors.Is(err, queue.ErrNoJob) {
			t.Fatalf("reserve at the class's limit = %+v, %v; want ErrNoJob", r, err)
		}
		if a, b := zcard(t, srv, classKey), zcard(t, srv, queueKey); a != 1 || b != 2 {
			t.Errorf("slots held: class %d, queue %d; want 1 and 2", a, b)
		}
		// The outcome step frees the worker's own two slots as it takes
		// the next job, which holds two of its own.
		_, next, err := f1.FinishAndReserve(ctx, r1, queue.Outcome{}, queues, opt)
		if err != nil || next == nil || string(next.Payload) != `{"class":"Slow","args":[4]}` || len(next.Slots) != 2 {
			t.Fatalf("finish and reserve = %+v, %v; want Slow [4] with two slots", next, err)
		}
		if a, b := zcard(t, srv, classKey), zcard(t, srv, queueKey); a != 1 || b != 2 {
			t.Errorf("slots held after the handover: class %d, queue %d; want 1 and 2", a, b)
		}
		members, _ := redis.Strings(srv.Do(t, "ZRANGE", classKey, 0, -1), nil)
		if len(members) != 1 || members[0] != next.Slots[0].Member || next.Slots[1].Member != next.Slots[0].Member {
			t.Errorf("class slots = %q, want only the next job's %q", members, next.Slots[0].Member)
		}
	})
}

// Both slots of a job lapse together with its worker's lease (killed with
// -9), and a renewal extends both.
func TestFetcher_QueueSlotLapsesWithLease(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	opt := queue.ReserveOptions{Limits: queue.NewLimits(map[string]queue.ClassLimit{"Slow": {Concurrency: 1}}).WithQueues(map[string]int{"reports": 1})}
	push(t, c, "reports", `{"class":"Slow","args":[1]}`, `{"class":"Slow","args":[2]}`)
	dead := c.NewLease("h:1:q", "", 10*time.Second)
	if _, err := dead.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	fd := dead.Fetcher()
	defer fd.Close()
	r := mustReserve(t, fd, []string{"reports"}, opt)
	if len(r.Slots) != 2 {
		t.Fatalf("slots = %+v, want two", r.Slots)
	}
	classKey, queueKey := queue.ConcurrencyKey(ns, "Slow"), queue.QueueConcurrencyKey(ns, "reports")
	score := func(key string) int64 {
		n, err := redis.Int64(srv.Do(t, "ZSCORE", key, r.Slots[0].Member), nil)
		if err != nil {
			t.Fatalf("ZSCORE %s: %v", key, err)
		}
		return n
	}
	beforeC, beforeQ := score(classKey), score(queueKey)
	dead.TTL = time.Minute
	if err := dead.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if c2, q2 := score(classKey), score(queueKey); c2-beforeC < 40_000 || q2-beforeQ < 40_000 {
		t.Errorf("after renewal the slots lapse %d and %d ms later, want ~50 s both", c2-beforeC, q2-beforeQ)
	}
	// Now the holder dies: a short TTL renewal, then silence.
	dead.TTL = 300 * time.Millisecond
	if err := dead.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	f := leasedFetcher(t, c, "h:2:q")
	if _, err := f.Reserve(ctx, []string{"reports"}, opt); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("reserve while the slots are held = %v, want ErrNoJob", err)
	}
	start := time.Now()
	r2 := reserveUntil(t, f, []string{"reports"}, opt, 5*time.Second)
	if string(r2.Payload) != `{"class":"Slow","args":[2]}` || len(r2.Slots) != 2 {
		t.Fatalf("took %s slots %+v", r2.Payload, r2.Slots)
	}
	for _, key := range []string{classKey, queueKey} {
		if members, _ := redis.Strings(srv.Do(t, "ZRANGE", key, 0, -1), nil); len(members) != 1 || members[0] != r2.Slots[0].Member {
			t.Errorf("%s = %q, want only the new holder (the dead one's lapsed)", key, members)
		}
	}
	t.Logf("both slots free %v after the holder stopped (lease TTL 300ms)", time.Since(start))
}

// Limits.WithQueues keeps the classes' limits, and an unlimited set stays
// nil (no cost).
func TestLimits_WithQueues(t *testing.T) {
	var none *queue.Limits
	if none.WithQueues(nil) != nil || none.WithQueues(map[string]int{"q": 0}) != nil {
		t.Error("no limits with no queue limits is not nil")
	}
	l := queue.NewLimits(map[string]queue.ClassLimit{"A": {Concurrency: 2}}).WithQueues(map[string]int{"q": 3})
	if n, ok := l.Queue("q"); !ok || n != 3 {
		t.Errorf("Queue(q) = %d, %v", n, ok)
	}
	if _, ok := l.Queue("other"); ok {
		t.Error("an unlimited queue has a limit")
	}
	if cl, ok := l.Class("A"); !ok || cl.Concurrency != 2 {
		t.Errorf("Class(A) = %+v, %v", cl, ok)
	}
}

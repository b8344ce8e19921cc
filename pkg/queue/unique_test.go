package queue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
)

// uniqueJob is a payload of class C with args, id, and its lock's keys.
func uniqueJob(t *testing.T, ns, q, id, args string) (payload []byte, lock, holder string) {
	t.Helper()
	d, err := queue.UniqueDigest("C", []byte(args))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(`{"class":"C","args":` + args + `,"id":"` + id + `"}`), queue.UniqueLockKey(ns, q, d), queue.UniqueHolderKey(ns, q, d)
}

// A unique enqueue takes resque-loner's lock ("1", with the TTL) and
// records its holder; a second copy is refused, naming the first, and
// writes nothing; another args or queue is another lock.
func TestClient_EnqueueUnique(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	p1, lock, holder := uniqueJob(t, ns, "q", "id1", `[1,{"b":2,"a":1}]`)
	opt := queue.EnqueueOptions{ID: "id1", Unique: time.Hour}
	if err := c.Enqueue(ctx, "q", p1, opt); err != nil {
		t.Fatal(err)
	}
	if got, _ := redis.String(srv.Do(t, "GET", lock), nil); got != "1" {
		t.Errorf("lock %s = %q, want resque-loner's \"1\"", lock, got)
	}
	if got, _ := redis.String(srv.Do(t, "GET", holder), nil); got != "id1" {
		t.Errorf("holder = %q, want id1", got)
	}
	for _, k := range []string{lock, holder} {
		if ttl, _ := redis.Int(srv.Do(t, "TTL", k), nil); ttl < 3500 || ttl > 3600 {
			t.Errorf("TTL of %s = %d, want about 3600", k, ttl)
		}
	}
	queued, _ := redis.Strings(srv.Do(t, "LRANGE", queue.QueueKey(ns, "q"), 0, -1), nil)
	if len(queued) != 1 || queued[0] != `{"class":"C","args":[1,{"b":2,"a":1}],"id":"id1","unique":3600}` {
		t.Errorf("queue = %q", queued)
	}

	p2, _, _ := uniqueJob(t, ns, "q", "id2", `[1, {"a":1, "b":2}]`) // the same job to resque-loner
	err := c.Enqueue(ctx, "q", p2, queue.EnqueueOptions{ID: "id2", Unique: time.Hour, Track: true})
	var dup *queue.DuplicateError
	if !errors.As(err, &dup) || !errors.Is(err, queue.ErrDuplicate) || dup.Holder != "id1" {
		t.Fatalf("second enqueue: %v, want a DuplicateError naming id1", err)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "q")), nil); n != 1 {
		t.Errorf("queue has %d jobs after a refused copy, want 1", n)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", "resque:job:id2:status"), nil); n != 0 {
		t.Error("a refused copy's status was created")
	}
	for _, other := range []struct{ q, args string }{{"q", `[2]`}, {"other", `[1,{"b":2,"a":1}]`}} {
		p, _, _ := uniqueJob(t, ns, other.q, "id3", other.args)
		if err := c.Enqueue(ctx, other.q, p, queue.EnqueueOptions{ID: "id3", Unique: time.Hour}); err != nil {
			t.Errorf("enqueue %s to %s: %v", other.args, other.q, err)
		}
	}

	for _, bad := range []queue.EnqueueOptions{{ID: "x", Unique: -time.Second}, {ID: "x", Unique: 500 * time.Millisecond}, {Unique: time.Hour}} {
		if err := c.Enqueue(ctx, "q", []byte(`{"class":"C","args":[9]}`), bad); err == nil || errors.Is(err, queue.ErrDuplicate) {
			t.Errorf("enqueue with %+v: %v, want a clear refusal", bad, err)
		}
	}
}

// A lock written by a Ruby app's resque-loner (SET to "1", no holder)
// is honoured: the copy is refused, with no holder to name.
func TestClient_EnqueueUnique_RubyLoner(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	p, lock, _ := uniqueJob(t, ns, "q", "id1", `["x"]`)
	srv.Do(t, "SET", lock, "1")
	err := c.Enqueue(ctx, "q", p, queue.EnqueueOptions{ID: "id1", Unique: time.Hour})
	var dup *queue.DuplicateError
	if !errors.As(err, &dup) || dup.Holder != "" {
		t.Fatalf("enqueue over a resque-loner lock: %v, want a DuplicateError with no holder", err)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "q")), nil); n != 0 {
		t.Errorf("queue has %d jobs", n)
	}
}

// Of 20 concurrent unique enqueues of one job, exactly one is enqueued;
// every other is told its id.
func TestClient_EnqueueUnique_Race(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("id%d", i)
			p, _, _ := uniqueJob(t, ns, "q", id, `[42]`)
			errs[i] = c.Enqueue(ctx, "q", p, queue.EnqueueOptions{ID: id, Unique: time.Hour})
		}()
	}
	wg.Wait()
	winner := ""
	for i, err := range errs {
		if err == nil {
			if winner != "" {
				t.Errorf("both %s and id%d were enqueued", winner, i)
			}
			winner = fmt.Sprintf("id%d", i)
		}
	}
	for _, err := range errs {
		var dup *queue.DuplicateError
		if err != nil && (!errors.As(err, &dup) || dup.Holder != winner) {
			t.Errorf("a loser's error = %v, want a DuplicateError naming %s", err, winner)
		}
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "q")), nil); n != 1 || winner == "" {
		t.Errorf("queue holds %d jobs (winner %q), want 1", n, winner)
	}
}

// A delayed unique job holds its lock until it is due plus the TTL; a
// copy, delayed or not, is refused meanwhile.
func TestClient_DelayUnique(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	p, lock, holder := uniqueJob(t, ns, "q", "id1", `[7]`)
	if err := c.Delay(ctx, time.Now().Add(time.Hour), "q", p, queue.EnqueueOptions{ID: "id1", Unique: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := redis.Int(srv.Do(t, "TTL", lock), nil); ttl < 3600 || ttl > 3661 {
		t.Errorf("TTL of the delayed job's lock = %d, want about 3660", ttl)
	}
	if got, _ := redis.String(srv.Do(t, "GET", holder), nil); got != "id1" {
		t.Errorf("holder = %q", got)
	}
	jobs, err := c.ListDelayed(ctx, 10)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("delayed = %v, %v", jobs, err)
	}
	p2, _, _ := uniqueJob(t, ns, "q", "id2", `[7]`)
	if err := c.Delay(ctx, time.Now().Add(time.Minute), "q", p2, queue.EnqueueOptions{ID: "id2", Unique: time.Minute}); !errors.Is(err, queue.ErrDuplicate) {
		t.Errorf("second delay: %v, want ErrDuplicate", err)
	}
	if err := c.Enqueue(ctx, "q", p2, queue.EnqueueOptions{ID: "id2", Unique: time.Minute}); !errors.Is(err, queue.ErrDuplicate) {
		t.Errorf("enqueue of a delayed job's copy: %v, want ErrDuplicate", err)
	}
	if jobs, _ := c.ListDelayed(ctx, 10); len(jobs) != 1 {
		t.Errorf("%d delayed jobs after refused copies, want 1", len(jobs))
	}
}

// ClaimUnique lets a job run when the lock is free, its own or
// resque-loner's (no holder), and refuses it while another job holds
// the lock; ReleaseUnique deletes only the releasing job's lock.
func TestClient_ClaimReleaseUnique(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	p, lock, holder := uniqueJob(t, ns, "q", "a", `[1]`)
	j, err := queue.Decode("q", p)
	if err != nil {
		t.Fatal(err)
	}
	// Free: taken.
	if err := c.ClaimUnique(ctx, j, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	// Its own: confirmed. Another's: refused, nothing changed.
	if err := c.ClaimUnique(ctx, j, "a", time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := redis.Int(srv.Do(t, "TTL", lock), nil); ttl < 3500 {
		t.Errorf("a confirmed lock's TTL = %d, want the new one's", ttl)
	}
	var dup *queue.DuplicateError
	if err := c.ClaimUnique(ctx, j, "b", time.Minute); !errors.As(err, &dup) || dup.Holder != "a" {
		t.Errorf("claim by b: %v, want a DuplicateError naming a", err)
	}
	if ok, err := c.ReleaseUnique(ctx, j, "b"); ok || err != nil {
		t.Errorf("release by b = %v, %v; want false", ok, err)
	}
	if ok, err := c.ReleaseUnique(ctx, j, "a"); !ok || err != nil {
		t.Errorf("release by a = %v, %v; want true", ok, err)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", lock, holder), nil); n != 0 {
		t.Errorf("%d lock keys left after release", n)
	}
	// resque-loner's lock, set by a Ruby enqueue of this job: adopted.
	srv.Do(t, "SET", lock, "1")
	if err := c.ClaimUnique(ctx, j, "b", time.Minute); err != nil {
		t.Errorf("claim of a resque-loner lock: %v", err)
	}
	if got, _ := redis.String(srv.Do(t, "GET", holder), nil); got != "b" {
		t.Errorf("holder after adopting = %q, want b", got)
	}
}

// ParseUnique reads true, a TTL in seconds, or nothing; anything else
// is an invalid payload.
func TestParseUnique(t *testing.T) {
	for raw, want := range map[string]time.Duration{"": 0, "null": 0, "false": 0, "true": queue.DefaultUniqueTTL, "90": 90 * time.Second} {
		ttl, ok, err := queue.ParseUnique([]byte(raw))
		if err != nil || ttl != want || ok != (want != 0) {
			t.Errorf("ParseUnique(%q) = %v, %v, %v; want %v", raw, ttl, ok, err, want)
		}
	}
	for _, raw := range []string{"0", "-5", "1.5", `"yes"`, "{}"} {
		if _, _, err := queue.ParseUnique([]byte(raw)); !errors.Is(err, queue.ErrInvalidPayload) {
			t.Errorf("ParseUnique(%s): %v, want ErrInvalidPayload", raw, err)
		}
	}
}

// A dead worker's unique job: failed by the pruner, its lock goes in the
// same step, only while its holder is still the job; requeued, the lock
// stays for its next run (a job without an id keeps only resque-loner's
// "1", which its next run takes over); a poison failure frees it too.
func TestClient_UnregisterDead_Unique(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	exists := func(k string) bool {
		n, _ := redis.Int(srv.Do(t, "EXISTS", k), nil)
		return n == 1
	}
	// orphan enqueues payload, has worker dead reserve and claim it as a
	// worker does, and returns its Orphan (Unique set).
	orphan := func(dead string, payload []byte) *queue.Orphan {
		t.Helper()
		if err := c.Enqueue(ctx, "q", payload, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		_ = c.RegisterWorker(ctx, dead, time.Now())
		r, err := c.Fetcher(dead).Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Decode(); err != nil {
			t.Fatal(err)
		}
		if err := c.ClaimUnique(ctx, &r.Job, queue.UniqueHolder(&r.Job, dead), time.Hour); err != nil {
			t.Fatal(err)
		}
		raw, _ := c.InFlight(ctx, dead)
		j := r.Job
		return &queue.Orphan{Record: raw, Queue: "q", Payload: r.Payload, Unique: &j}
	}

	p, lock, holder := uniqueJob(t, ns, "q", "f1", `[1]`)
	o := orphan("h:1:q", p)
	o.Fail = &queue.Outcome{Exception: "Resque::DirtyExit", Error: "Job still being processed"}
	if done, err := c.UnregisterDead(ctx, "h:1:q", "", o); done != queue.UnregisteredOK || err != nil {
		t.Fatalf("fail orphan: %v %v", done, err)
	}
	if exists(lock) || exists(holder) {
		t.Error("a failed orphan's lock outlived it")
	}

	p, lock, holder = uniqueJob(t, ns, "q", "r1", `[2]`)
	o = orphan("h:2:q", p)
	o.Requeue, o.MaxRedeliveries = true, -1
	if done, err := c.UnregisterDead(ctx, "h:2:q", "", o); done != queue.UnregisteredOK || err != nil {
		t.Fatalf("requeue orphan: %v %v", done, err)
	}
	if got, _ := redis.String(srv.Do(t, "GET", holder), nil); !exists(lock) || got != "r1" {
		t.Errorf("a requeued orphan's lock: exists %v, holder %q; want kept for r1", exists(lock), got)
	}
	srv.Do(t, "DEL", queue.QueueKey(ns, "q"))

	// No id (a Ruby app's job): the holder was the worker's name.
	d, _ := queue.UniqueDigest("C", []byte(`[3]`))
	lock, holder = queue.UniqueLockKey(ns, "q", d), queue.UniqueHolderKey(ns, "q", d)
	o = orphan("h:3:q", []byte(`{"class":"C","args":[3]}`))
	if got, _ := redis.String(srv.Do(t, "GET", holder), nil); got != "worker:h:3:q" {
		t.Fatalf("holder of a job without id = %q, want worker:h:3:q", got)
	}
	o.Requeue, o.MaxRedeliveries = true, -1
	if done, err := c.UnregisterDead(ctx, "h:3:q", "", o); done != queue.UnregisteredOK || err != nil {
		t.Fatalf("requeue orphan without id: %v %v", done, err)
	}
	if !exists(lock) || exists(holder) {
		t.Errorf("requeued without id: lock %v, holder %v; want the lock only", exists(lock), exists(holder))
	}
	// Its next run, on another worker, takes the lock over.
	next := &queue.Job{Queue: "q", Class: "C", Args: []byte(`[3]`)}
	if err := c.ClaimUnique(ctx, next, queue.UniqueHolder(next, "h:4:q"), time.Hour); err != nil {
		t.Errorf("next run of the requeued job: %v", err)
	}
	srv.Do(t, "DEL", queue.QueueKey(ns, "q"))

	// Poison: a requeue past MaxRedeliveries fails and frees the lock.
	p, lock, _ = uniqueJob(t, ns, "q", "x1", `[4]`)
	o = orphan("h:5:q", p)
	o.Requeue, o.MaxRedeliveries, o.Poison = true, 0, &queue.Outcome{Exception: "Resque::DirtyExit", Error: "poison"}
	if done, err := c.UnregisterDead(ctx, "h:5:q", "", o); done != queue.UnregisteredPoison || err != nil {
		t.Fatalf("poison orphan: %v %v", done, err)
	}
	if exists(lock) {
		t.Error("a poison orphan's lock outlived it")
	}

	// A lock another job holds by now (the orphan's expired and was
	// taken again) is not the failed orphan's to delete.
	p, lock, holder = uniqueJob(t, ns, "q", "f2", `[5]`)
	o = orphan("h:6:q", p)
	srv.Do(t, "SET", holder, "newer")
	o.Fail = &queue.Outcome{Exception: "Resque::DirtyExit", Error: "Job still being processed"}
	if done, err := c.UnregisterDead(ctx, "h:6:q", "", o); done != queue.UnregisteredOK || err != nil {
		t.Fatalf("fail orphan: %v %v", done, err)
	}
	if got, _ := redis.String(srv.Do(t, "GET", holder), nil); !exists(lock) || got != "newer" {
		t.Errorf("another job's lock: exists %v, holder %q; want kept for newer", exists(lock), got)
	}
	if n, err := c.UniqueLocks(ctx); err != nil || n != 3 {
		t.Errorf("UniqueLocks = %d, %v; want 3 (r1, the job without id's next run, newer)", n, err)
	}
}

package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// pushJobs enqueues one untracked job of class A per arg onto q.
func pushJobs(t *testing.T, c *queue.Client, q string, args ...string) {
	t.Helper()
	for _, a := range args {
		p, _ := queue.Encode("A", []byte(`["`+a+`"]`), "")
		if err := c.Enqueue(context.Background(), q, p, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// argOf is the first arg of a reserved job, as pushJobs wrote it.
func argOf(t *testing.T, r *queue.Reserved) string {
	t.Helper()
	if err := r.Decode(); err != nil {
		t.Fatal(err)
	}
	var args []string
	if err := json.Unmarshal(r.Args, &args); err != nil || len(args) != 1 {
		t.Fatalf("args of %s: %v %v", r.Payload, args, err)
	}
	return args[0]
}

// A paused queue is passed over and the next in priority order taken;
// strict priority holds for the rest; once resumed, it comes first again.
// The same holds for the reserve inside FinishAndReserve, and with a
// class filter.
func TestFetcher_ReservePassesOverPausedQueue(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	pushJobs(t, c, "high", "h1", "h2")
	pushJobs(t, c, "mid", "m1")
	pushJobs(t, c, "low", "l1", "l2")
	queues := []string{"high", "mid", "low"}
	f := leasedFetcher(t, c, "h:1:high,mid,low")

	ch, err := c.PauseQueue(ctx, "high")
	if err != nil || !ch.Paused || !ch.Changed || !ch.Known {
		t.Fatalf("PauseQueue(high) = %+v, %v", ch, err)
	}
	r, err := f.Reserve(ctx, queues, queue.ReserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := argOf(t, r); got != "m1" || r.Queue != "mid" {
		t.Fatalf("reserve with high paused took %s from %s, want m1 from mid", got, r.Queue)
	}
	_, next, err := f.FinishAndReserve(ctx, r, queue.Outcome{}, queues, queue.ReserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := argOf(t, next); got != "l1" {
		t.Fatalf("FinishAndReserve with high paused took %s, want l1", got)
	}
	// Paused too, with a class filter: nothing left to take.
	if _, err := c.PauseQueue(ctx, "low"); err != nil {
		t.Fatal(err)
	}
	_, none, err := f.FinishAndReserve(ctx, next, queue.Outcome{}, queues, queue.ReserveOptions{Classes: []string{"A"}})
	if !errors.Is(err, queue.ErrNoJob) || none != nil {
		t.Fatalf("FinishAndReserve with high and low paused = %+v, %v; want ErrNoJob", none, err)
	}
	if _, err := f.Reserve(ctx, queues, queue.ReserveOptions{Classes: []string{"A"}}); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("Reserve with high and low paused = %v; want ErrNoJob", err)
	}
	for q, want := range map[string]int{"high": 2, "mid": 0, "low": 1} {
		if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, q)), nil); n != want {
			t.Errorf("queue %s holds %d, want %d", q, n, want)
		}
	}

	ch, err = c.ResumeQueue(ctx, "high")
	if err != nil || ch.Paused || !ch.Changed {
		t.Fatalf("ResumeQueue(high) = %+v, %v", ch, err)
	}
	for _, want := range []string{"h1", "h2"} {
		r, err := f.Reserve(ctx, queues, queue.ReserveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := argOf(t, r); got != want {
			t.Fatalf("after resume took %s, want %s", got, want)
		}
		if _, err := c.FinishJob(ctx, r, queue.Outcome{}); err != nil {
			t.Fatal(err)
		}
	}
}

// The pause key is resque-pause's, byte for byte (lib/resque_pause_helper.rb):
// ResquePauseHelper.pause(q) is Resque.redis.set("pause:queue:#{q}", true),
// which redis-rb sends as SET <ns>:pause:queue:<q> "true"; unpause is DEL;
// paused?(q) is MGET of that key and pause:all, paused unless all nil.
// Each side honours what the other writes.
func TestQueuePause_ResquePauseLayout(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	pushJobs(t, c, "a", "a1")
	pushJobs(t, c, "b", "b1")
	queues := []string{"a", "b"}
	f := leasedFetcher(t, c, "h:1:a,b")

	// Ruby pauses a, as the gem does.
	srv.Do(t, "SET", "resque:pause:queue:a", "true")
	if p, err := c.QueuePaused(ctx, "a"); err != nil || !p {
		t.Errorf("QueuePaused(a) after the gem's pause = %v, %v", p, err)
	}
	r, err := f.Reserve(ctx, queues, queue.ReserveOptions{})
	if err != nil || r.Queue != "b" {
		t.Fatalf("reserve with a paused by resque-pause = %+v, %v; want b's job", r, err)
	}
	if _, err := c.FinishJob(ctx, r, queue.Outcome{}); err != nil {
		t.Fatal(err)
	}
	// Ruby unpauses: resqued takes a's job.
	srv.Do(t, "DEL", "resque:pause:queue:a")
	r, err = f.Reserve(ctx, queues, queue.ReserveOptions{})
	if err != nil || r.Queue != "a" {
		t.Fatalf("reserve after the gem's unpause = %+v, %v; want a's job", r, err)
	}

	// resqued pauses b, c: the gem's paused? sees both, with its value.
	for _, q := range []string{"b", "c"} {
		if _, err := c.PauseQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
		vals, _ := redis.Values(srv.Do(t, "MGET", "resque:pause:queue:"+q, "resque:pause:all"), nil)
		if v, _ := redis.String(vals[0], nil); v != "true" {
			t.Errorf("pause key of %s = %q, want resque-pause's \"true\"", q, v)
		}
	}
	if got := queue.QueuePauseKey(ns, "b"); got != "resque:pause:queue:b" {
		t.Errorf("QueuePauseKey = %q", got)
	}
	// resqued resumes b: the gem sees it unpaused (the key is gone).
	if ch, err := c.ResumeQueue(ctx, "b"); err != nil || !ch.Changed {
		t.Fatalf("ResumeQueue(b) = %+v, %v", ch, err)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", "resque:pause:queue:b"), nil); n != 0 {
		t.Error("pause key of b still exists after ResumeQueue")
	}
}

// Pausing twice, resuming what is not paused, pausing a queue nobody has
// pushed to (allowed, and said), and names no worker could listen to.
func TestQueuePause_Changes(t *testing.T) {
	ctx := context.Background()
	_, c, _ := newClient(t)
	pushJobs(t, c, "known", "k1")
	for _, tc := range []struct {
		name   string
		op     func(context.Context, string) (queue.QueuePauseChange, error)
		q      string
		want   queue.QueuePauseChange
		errHas string
	}{
		{"Pause", c.PauseQueue, "known", queue.QueuePauseChange{Queue: "known", Paused: true, Changed: true, Known: true}, ""},
		{"PauseAgain", c.PauseQueue, "known", queue.QueuePauseChange{Queue: "known", Paused: true, Known: true}, ""},
		{"Resume", c.ResumeQueue, "known", queue.QueuePauseChange{Queue: "known", Changed: true, Known: true}, ""},
		{"ResumeAgain", c.ResumeQueue, "known", queue.QueuePauseChange{Queue: "known", Known: true}, ""},
		{"PauseUnknown", c.PauseQueue, "later", queue.QueuePauseChange{Queue: "later", Paused: true, Changed: true}, ""},
		{"Empty", c.PauseQueue, "", queue.QueuePauseChange{}, "queue name is empty"},
		{"Comma", c.PauseQueue, "a,b", queue.QueuePauseChange{}, "must not contain a comma"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.op(ctx, tc.q)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want one saying %q", err, tc.errHas)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	// "later" is paused but in no queues set: PausedQueues finds it,
	// QueueSizes shows the known ones with their pause.
	paused, err := c.PausedQueues(ctx)
	if err != nil || len(paused) != 1 || paused[0] != "later" {
		t.Errorf("PausedQueues = %v, %v; want [later]", paused, err)
	}
	if _, err := c.PauseQueue(ctx, "known"); err != nil {
		t.Fatal(err)
	}
	qs, err := c.QueueSizes(ctx)
	if err != nil || len(qs) != 1 || qs[0] != (queue.QueueSize{Queue: "known", Size: 1, Paused: true}) {
		t.Errorf("QueueSizes = %+v, %v", qs, err)
	}
}

// A paused queue holding jobs does not wake Wait: after a reserve that
// passed over it, Wait watches only the other queues (one BLMOVE, on b).
func TestFetcher_WaitIgnoresPausedQueue(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := queue.New(srv.Pool(t), "resque")
	pushJobs(t, c, "a", "a1")
	if _, err := c.PauseQueue(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	f := leasedFetcher(t, c, "h:1:a,b")
	queues := []string{"a", "b"}
	if _, err := f.Reserve(ctx, queues, queue.ReserveOptions{}); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("reserve = %v, want ErrNoJob", err)
	}
	srv.Do(t, "CONFIG", "RESETSTAT")
	if err := f.Wait(ctx, queues, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if f.WaitedOut() {
		t.Error("WaitedOut after a wait that passed over a paused queue holding jobs: the worker would not look again")
	}
	stats := srv.Info(t, "commandstats")
	if got := stats["cmdstat_blmove"]; !strings.HasPrefix(got, "calls=1,") {
		t.Errorf("cmdstat_blmove = %q, want calls=1 (b only, not the paused a)", got)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey("resque", "a")), nil); n != 1 {
		t.Errorf("paused queue a holds %d, want 1", n)
	}
}

package queue_test

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
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

func blocked(t *testing.T, srv *redistest.Server, n int) func() bool {
	return func() bool {
		s, _ := redis.String(srv.Do(t, "INFO", "clients"), nil)
		return strings.Contains(s, "blocked_clients:"+strconv.Itoa(n)+"\r")
	}
}

func TestFetcher(t *testing.T) {
	ctx := context.Background()
	t.Run("Priority", func(t *testing.T) {
		srv, c, ns := newClient(t)
		for _, q := range []string{"low", "mid", "high", "low"} {
			_ = c.Enqueue(ctx, q, []byte(`{"class":"`+q+`"}`), queue.EnqueueOptions{})
		}
		f := c.Fetcher("h:1:high,mid,low")
		defer f.Close()
		var got []string
		for {
			r, err := f.Reserve(ctx, []string{"high", "mid", "low"}, queue.ReserveOptions{})
			if errors.Is(err, queue.ErrNoJob) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			// The job sits in worker:<id> until its outcome is recorded.
			rec, _ := redis.String(srv.Do(t, "GET", queue.WorkerKey(ns, "h:1:high,mid,low")), nil)
			if fmt.Sprintf("%x", sha1.Sum([]byte(rec))) != r.Record || !strings.Contains(rec, `"payload":`+string(r.Payload)) {
				t.Fatalf("worker record %s, reserved %+v", rec, r)
			}
			// Reserving again without finishing resumes the same job.
			again, err := f.Reserve(ctx, []string{"high", "mid", "low"}, queue.ReserveOptions{})
			if err != nil || !again.Resumed || string(again.Payload) != string(r.Payload) || again.Queue != r.Queue {
				t.Fatalf("second reserve = %+v, %v; want the same job resumed", again, err)
			}
			if ok, err := c.FinishJob(ctx, r, queue.Outcome{}); !ok || err != nil {
				t.Fatalf("finish = %v %v", ok, err)
			}
			if ok, _ := c.FinishJob(ctx, r, queue.Outcome{}); ok {
				t.Fatal("a second finish of the same job was recorded")
			}
			got = append(got, r.Queue)
		}
		if strings.Join(got, ",") != "high,mid,low,low" {
			t.Errorf("order = %v", got)
		}
		if n, _ := redis.Int(srv.Do(t, "GET", queue.StatKey(ns, "processed")), nil); n != 4 {
			t.Errorf("processed = %d, want 4 (no double counting)", n)
		}
	})
	t.Run("InvalidPayloadKeptInRecord", func(t *testing.T) {
		srv, c, _ := newClient(t)
		_ = c.Enqueue(ctx, "q", []byte(`{"class":`), queue.EnqueueOptions{})
		f := c.Fetcher("h:1:q")
		r, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
		if err != nil || string(r.Payload) != `{"class":` {
			t.Fatalf("reserve = %+v %v", r, err)
		}
		rec, _ := redis.Bytes(srv.Do(t, "GET", queue.WorkerKey("resque", "h:1:q")), nil)
		w, err := queue.ParseWorking(rec)
		if err != nil {
			t.Fatalf("worker record is not JSON: %s", rec)
		}
		if string(w.Payload) != `"{\"class\":"` {
			t.Errorf("embedded = %s", w.Payload)
		}
	})
	t.Run("OnlyKnownClasses", func(t *testing.T) {
		srv, c, ns := newClient(t)
		_ = c.Enqueue(ctx, "a", []byte(`{"class":"RubyOnly","args":[]}`), queue.EnqueueOptions{})
		_ = c.Enqueue(ctx, "a", []byte(`{"class":"Mine","args":[]}`), queue.EnqueueOptions{})
		_ = c.Enqueue(ctx, "b", []byte(`{"class":"Mine","args":[2]}`), queue.EnqueueOptions{})
		f := c.Fetcher("h:1:a,b")
		opt := queue.ReserveOptions{Classes: []string{"Mine"}}
		r, err := f.Reserve(ctx, []string{"a", "b"}, opt)
		if err != nil || r.Queue != "b" {
			t.Fatalf("reserve = %+v %v; want queue a passed over (RubyOnly at its head)", r, err)
		}
		c.FinishJob(ctx, r, queue.Outcome{})
		if _, err := f.Reserve(ctx, []string{"a", "b"}, opt); !errors.Is(err, queue.ErrNoJob) {
			t.Fatalf("err = %v", err)
		}
		if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "a")), nil); n != 2 {
			t.Errorf("queue a has %d jobs, want 2 untouched", n)
		}
	})
	t.Run("Release", func(t *testing.T) {
		srv, c, ns := newClient(t)
		_ = c.Enqueue(ctx, "q", []byte(`{"class":"A","x":1}`), queue.EnqueueOptions{})
		_ = c.Enqueue(ctx, "q", []byte(`{"class":"B"}`), queue.EnqueueOptions{})
		f := c.Fetcher("h:1:q")
		r, _ := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
		if err := c.Release(ctx, r); err != nil {
			t.Fatal(err)
		}
		if head, _ := redis.String(srv.Do(t, "LINDEX", queue.QueueKey(ns, "q"), 0), nil); head != `{"class":"A","x":1}` {
			t.Errorf("head = %s", head)
		}
		if n, _ := redis.Int(srv.Do(t, "EXISTS", queue.WorkerKey(ns, "h:1:q")), nil); n != 0 {
			t.Error("worker:<id> kept after release")
		}
	})
	t.Run("WaitWakesOnPush", func(t *testing.T) {
		srv, c, _ := newClient(t)
		f := c.Fetcher("h:1:a,b")
		defer f.Close()
		done := make(chan error, 1)
		go func() { done <- f.Wait(ctx, []string{"a", "b"}, 30*time.Second) }()
		redistest.Eventually(t, 10*time.Second, blocked(t, srv, 2), "waits never blocked")
		_ = c.Enqueue(ctx, "b", []byte(`{"class":"B"}`), queue.EnqueueOptions{})
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Wait did not wake on push")
		}
		// Waiting took nothing.
		if r, err := f.Reserve(ctx, []string{"a", "b"}, queue.ReserveOptions{}); err != nil || r.Queue != "b" {
			t.Fatalf("reserve after wait = %+v %v", r, err)
		}
		redistest.Eventually(t, 10*time.Second, blocked(t, srv, 0), "a wait left blocked")
	})
	t.Run("WaitCancel", func(t *testing.T) {
		srv, c, _ := newClient(t)
		f := c.Fetcher("h:1:a")
		defer f.Close()
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- f.Wait(cctx, []string{"a"}, time.Minute) }()
		redistest.Eventually(t, 10*time.Second, blocked(t, srv, 1), "wait never blocked")
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("cancel did not end the wait")
		}
	})
}

func TestClient_UnregisterDead(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	_ = c.Enqueue(ctx, "q", []byte(`{"class":"A","args":[1]}`), queue.EnqueueOptions{})
	_ = c.Enqueue(ctx, "q", []byte(`{"class":"B"}`), queue.EnqueueOptions{})
	dead := "h:9:q"
	_ = c.RegisterWorker(ctx, dead, time.Now())
	r, _ := c.Fetcher(dead).Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
	raw, _ := c.InFlight(ctx, dead)
	o := &queue.Orphan{Record: raw, Queue: r.Queue, Payload: r.Payload, Requeue: true}
	if ok, err := c.UnregisterDead(ctx, dead, "", o); ok != queue.UnregisteredOK || err != nil {
		t.Fatalf("first prune = %v %v", ok, err)
	}
	if ok, _ := c.UnregisterDead(ctx, dead, "", o); ok != queue.NotUnregistered {
		t.Fatal("a second pruner acted on the same job")
	}
	got, _ := redis.Strings(srv.Do(t, "LRANGE", queue.QueueKey(ns, "q"), 0, -1), nil)
	if strings.Join(got, " ") != `{"class":"A","args":[1]} {"class":"B"}` {
		t.Errorf("queue after requeue = %v", got)
	}
	if ids, _ := c.Workers(ctx); len(ids) != 0 {
		t.Errorf("workers = %v", ids)
	}
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
	_ = c.Enqueue(ctx, "selfcheck_live", payload, queue.EnqueueOptions{})
	_ = c.Enqueue(ctx, "selfcheck_live", payload, queue.EnqueueOptions{})
	f0 := c.Fetcher(id)
	r, err := f0.Reserve(ctx, []string{"selfcheck_live"}, queue.ReserveOptions{Now: time.Date(2026, 11, 27, 8, 50, 2, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	// Byte for byte what Ruby Resque wrote (testdata/compat/worker/ruby.json).
	if got, _ := redis.String(srv.Do(t, "GET", queue.WorkerKey(ns, id)), nil); got != `{"queue":"selfcheck_live","run_at":"2026-11-27T08:50:02Z","payload":{"class":"Sleep","args":[6]}}` {
		t.Errorf("worker value = %s", got)
	}
	o := queue.Outcome{Exception: "RuntimeError", Error: "bad", Backtrace: []string{"l1"}, At: time.Date(2026, 11, 27, 8, 50, 9, 0, time.UTC)}
	if _, err := c.FinishJob(ctx, r, o); err != nil {
		t.Fatal(err)
	}
	if r, err = f0.Reserve(ctx, []string{"selfcheck_live"}, queue.ReserveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FinishJob(ctx, r, queue.Outcome{}); err != nil {
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
	if err := c.UnregisterWorker(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	keys, _ := redis.Strings(srv.Do(t, "KEYS", "*"), nil)
	want := map[string]bool{queue.StatKey(ns, "processed"): true, queue.StatKey(ns, "failed"): true, queue.FailedKey(ns): true, queue.QueuesKey(ns): true}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("key %s left after unregister", k)
		}
	}
}

// A queue held up by another class's job must not turn Wait into a busy
// loop: Wait then watches only the other queues, for at most a second.
func TestFetcher_WaitSkipsForeignHeads(t *testing.T) {
	ctx := context.Background()
	_, c, _ := newClient(t)
	_ = c.Enqueue(ctx, "mixed", []byte(`{"class":"RubyOnly","args":[]}`), queue.EnqueueOptions{})
	f := c.Fetcher("h:1:mixed")
	defer f.Close()
	opt := queue.ReserveOptions{Classes: []string{"Mine"}}
	if _, err := f.Reserve(ctx, []string{"mixed"}, opt); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("err = %v", err)
	}
	// Count the rounds a second allows; a busy loop would do thousands.
	rounds := 0
	for end := time.Now().Add(time.Second); time.Now().Before(end); rounds++ {
		if err := f.Wait(ctx, []string{"mixed"}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Reserve(ctx, []string{"mixed"}, opt); !errors.Is(err, queue.ErrNoJob) {
			t.Fatalf("err = %v", err)
		}
	}
	if rounds > 3 {
		t.Errorf("%d wait rounds in a second: Wait returns at once on a queue held by another class", rounds)
	}
}

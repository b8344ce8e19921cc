package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

func TestValidateJobID(t *testing.T) {
	for _, ok := range []string{"3f2a9c0e1b4d5a6f7e8d9c0b1a2f3e4d", "job-1", "a:b/c@d", "ü"} {
		if err := queue.ValidateJobID(ok); err != nil {
			t.Errorf("ValidateJobID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "a b", "a\tb", "a\x00b", "a\nb", `a"b`, `a\b`, strings.Repeat("a", 129), "\xff"} {
		if err := queue.ValidateJobID(bad); err == nil {
			t.Errorf("ValidateJobID(%q) accepted", bad)
		}
	}
}

// The cancel request is pushed only while the worker holds the very
// record read; a stale one (the job ended, another took its place) is
// refused. The worker's watcher takes it.
func TestClient_RequestCancel(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	w := "h:1:q"
	srv.Do(t, "SADD", queue.WorkersKey(ns), w)
	_ = c.Enqueue(ctx, "q", []byte(`{"class":"A","args":[],"id":"tok1"}`), queue.EnqueueOptions{})
	_ = c.Enqueue(ctx, "q", []byte(`{"class":"A","args":[],"id":"tok2"}`), queue.EnqueueOptions{})
	f := c.Fetcher(w)
	defer f.Close()
	r, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.FindRunning(ctx, "tok1")
	if err != nil {
		t.Fatal(err)
	}
	if j.Worker != w || j.Queue != "q" || j.Class != "A" || j.Record != r.Record {
		t.Fatalf("FindRunning = %+v, want worker %s record %s", j, w, r.Record)
	}
	if _, err := c.FindRunning(ctx, "tok2"); !errors.Is(err, queue.ErrNotRunning) {
		t.Errorf("FindRunning of a queued job: %v, want ErrNotRunning", err)
	}
	if byW, err := c.RunningOn(ctx, w); err != nil || byW.Record != j.Record {
		t.Errorf("RunningOn = %+v %v", byW, err)
	}
	if _, err := c.RunningOn(ctx, "h:2:q"); !errors.Is(err, queue.ErrNotRunning) {
		t.Errorf("RunningOn an idle worker: %v, want ErrNotRunning", err)
	}
	at := time.Date(2026, 12, 1, 16, 40, 0, 0, time.UTC)
	if ok, err := c.RequestCancel(ctx, j, "alice@web-3", at); !ok || err != nil {
		t.Fatalf("RequestCancel = %v %v", ok, err)
	}
	if ttl, _ := redis.Int(srv.Do(t, "TTL", queue.CancelKey(ns, w)), nil); ttl <= 0 || ttl > 3600 {
		t.Errorf("cancel list TTL = %d", ttl)
	}
	cw := c.CancelWatcher(w)
	defer cw.Close()
	req, err := cw.Next(ctx, time.Second)
	if err != nil || req == nil {
		t.Fatalf("Next = %v %v", req, err)
	}
	if req.Record != r.Record || req.ID != "tok1" || req.By != "alice@web-3" || req.At != "2026-12-01T16:40:00Z" {
		t.Errorf("request = %+v", req)
	}
	if got := req.Describe(); got != "cancelled by alice@web-3 at 2026-12-01T16:40:00Z" {
		t.Errorf("Describe = %q", got)
	}

	// The job ends and the worker takes the next: the old record is stale.
	if ok, err := c.FinishJob(ctx, r, queue.Outcome{}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{}); err != nil {
		t.Fatal(err)
	}
	if running, _ := c.StillRunning(ctx, j); running {
		t.Error("StillRunning of an ended job")
	}
	if ok, err := c.RequestCancel(ctx, j, "bob", at); ok || err != nil {
		t.Errorf("RequestCancel of a stale record = %v %v, want refused", ok, err)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.CancelKey(ns, w)), nil); n != 0 {
		t.Errorf("cancel list holds %d requests after a refused one", n)
	}
	// Nothing waiting: Next returns nil once its timeout passes.
	if req, err := cw.Next(ctx, 50*time.Millisecond); req != nil || err != nil {
		t.Errorf("Next on an empty list = %v %v", req, err)
	}
}

// A queued job is removed, the others stay, and a tracked one's status
// fails with the reason.
func TestClient_RemoveQueued(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	for _, p := range []string{`{"class":"A","args":[1],"id":"keep"}`, `{"class":"A","args":[2],"id":"tok"}`, `{"class":"B","args":["tok"]}`} {
		if err := c.Enqueue(ctx, "q", []byte(p), queue.EnqueueOptions{Track: strings.Contains(p, `"id":"tok"`), ID: "tok"}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Unix(1795800000, 0)
	q, err := c.RemoveQueued(ctx, "tok", "cancelled by alice", now)
	if err != nil || q != "q" {
		t.Fatalf("RemoveQueued = %q %v", q, err)
	}
	left, _ := redis.Strings(srv.Do(t, "LRANGE", queue.QueueKey(ns, "q"), 0, -1), nil)
	if len(left) != 2 || !strings.Contains(left[0], "keep") || !strings.Contains(left[1], `"B"`) {
		t.Errorf("queue left = %v", left)
	}
	checkFailedStatus(t, srv.Do(t, "GET", status.Key(ns, "tok")), "cancelled by alice")
	if ttl, _ := redis.Int(srv.Do(t, "TTL", status.Key(ns, "tok")), nil); ttl <= 0 {
		t.Errorf("failed status TTL = %d", ttl)
	}
	if _, err := c.RemoveQueued(ctx, "tok", "again", now); !errors.Is(err, queue.ErrNotQueued) {
		t.Errorf("second RemoveQueued: %v, want ErrNotQueued", err)
	}
}

// A delayed job (and a retry, which is one) leaves the delayed set as
// resque-scheduler's remove_delayed takes it: list, schedule, timestamps
// set and resqued's delayed-status index.
func TestClient_RemoveDelayed(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	at := time.Unix(1795800000, 0)
	payload := []byte(`{"class":"A","args":[1],"id":"tok"}`)
	if err := c.Delay(ctx, at, "q", payload, queue.EnqueueOptions{Track: true, ID: "tok"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delay(ctx, at.Add(time.Minute), "q", []byte(`{"class":"A","args":[2],"id":"other"}`), queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	item, _ := queue.DelayedItem("q", payload)
	digest := queue.DelayedStatusDigest("q", "A", json.RawMessage(`[1]`))
	if n, _ := redis.Int(srv.Do(t, "HLEN", queue.DelayedStatusKey(ns, digest)), nil); n != 1 {
		t.Fatalf("delayed-status index holds %d, want 1", n)
	}
	due, err := c.RemoveDelayed(ctx, "tok", "cancelled by alice", time.Now())
	if err != nil || !due.Equal(at) {
		t.Fatalf("RemoveDelayed = %v %v, want %v", due, err, at)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", queue.DelayedKey(ns, at.Unix()), queue.TimestampsKey(ns, string(item))), nil); n != 0 {
		t.Errorf("%d of the delayed list and timestamps set remain", n)
	}
	if got, _ := redis.Strings(srv.Do(t, "ZRANGE", queue.DelayedScheduleKey(ns), 0, -1), nil); len(got) != 1 || got[0] != "1795800060" {
		t.Errorf("schedule = %v, want only the other job's timestamp", got)
	}
	if n, _ := redis.Int(srv.Do(t, "HLEN", queue.DelayedStatusKey(ns, digest)), nil); n != 0 {
		t.Errorf("delayed-status index still holds %d", n)
	}
	checkFailedStatus(t, srv.Do(t, "GET", status.Key(ns, "tok")), "cancelled by alice")
	if _, err := c.RemoveDelayed(ctx, "tok", "again", time.Now()); !errors.Is(err, queue.ErrNotDelayed) {
		t.Errorf("second RemoveDelayed: %v, want ErrNotDelayed", err)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.DelayedKey(ns, at.Unix()+60)), nil); n != 1 {
		t.Errorf("the other delayed job is gone")
	}
}

func checkFailedStatus(t *testing.T, v interface{}, why string) {
	t.Helper()
	b, _ := redis.Bytes(v, nil)
	var s struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Status != int(status.Failed) || s.Error != why {
		t.Errorf("status = %s, want failed with error %q", b, why)
	}
}

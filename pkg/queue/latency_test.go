package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/resqued/resqued/pkg/queue"
)

func TestEnqueuedAt(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 41, 23, 500_000_000, time.UTC)
	for _, tc := range []struct {
		name    string
		payload string
		want    time.Time // zero: no time
	}{
		{"Ruby", `{"class":"A","args":[]}`, time.Time{}},
		{"SecondsFloat", `{"class":"A","args":[],"enqueued_at":1795772483.5}`, time.Unix(1795772483, 500_000_000)},
		{"Milliseconds", `{"class":"A","args":[],"enqueued_at":1795772483500}`, time.Unix(1795772483, 500_000_000)},
		{"RFC3339", `{"class":"A","args":[],"enqueued_at":"2026-11-27T09:41:23.5Z"}`, at},
		{"RFC3339Offset", `{"class":"A","args":[],"enqueued_at":"2026-11-27T10:41:23.5+01:00"}`, at},
		{"PHPQueueTime", `{"class":"Echo","args":[{"n":1}],"id":"49cf","prefix":"","queue_time":1795772483.852331}`, time.Unix(1795772483, 852_331_000)},
		{"EnqueuedAtFirst", `{"class":"A","args":[],"queue_time":1,"enqueued_at":1795772483}`, time.Unix(1795772483, 0)},
		{"ActiveJob", `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"Mail","enqueued_at":"2026-11-27T09:41:23.500000000Z"}]}`, at},
		{"ActiveJobOtherClass", `{"class":"Other","args":[{"enqueued_at":"2026-11-27T09:41:23Z"}]}`, time.Time{}},
		{"Garbage", `{"class":"A","args":[],"enqueued_at":"yesterday"}`, time.Time{}},
		{"Zero", `{"class":"A","args":[],"enqueued_at":0}`, time.Time{}},
		{"Null", `{"class":"A","args":[],"enqueued_at":null}`, time.Time{}},
		{"ArgsNotArray", `{"class":"A","args":{"x":1},"queue_time":1795772483}`, time.Unix(1795772483, 0)},
		{"NotJSON", `not json`, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := queue.EnqueuedAt([]byte(tc.payload))
			if ok != !tc.want.IsZero() {
				t.Fatalf("EnqueuedAt(%s) = %v, %v; want %v", tc.payload, got, ok, tc.want)
			}
			// Microseconds: a float64 of Unix seconds holds no more.
			if ok && got.Sub(tc.want).Abs() > time.Microsecond {
				t.Errorf("EnqueuedAt(%s) = %v, want %v", tc.payload, got, tc.want)
			}
		})
	}
}

func TestClient_QueueHeads(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	srv.Do(t, "SADD", queue.QueuesKey(ns), "b", "a", "empty")
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "a"), "a1", "a2")
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "b"), "b1")
	hs, err := c.QueueHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, h := range hs {
		got += fmt.Sprintf("%s:%d:%s ", h.Queue, h.Size, h.Head)
	}
	if want := "a:2:a1 b:1:b1 empty:0: "; got != want {
		t.Errorf("QueueHeads = %s, want %s", got, want)
	}
	if hs[2].Head != nil {
		t.Errorf("empty queue's head = %q, want nil", hs[2].Head)
	}
}

// The clock times a head without a time from when it first saw it, keeps
// that time while the head stays, and starts again when it changes.
func TestHeadClock(t *testing.T) {
	var c queue.HeadClock
	t0 := time.Unix(1800000000, 0)
	stamped := fmt.Sprintf(`{"class":"A","args":[],"enqueued_at":%d}`, t0.Add(-30*time.Second).Unix())
	heads := []queue.QueueHead{
		{Queue: "plain", Size: 2, Head: []byte(`{"class":"A","args":[1]}`)},
		{Queue: "stamped", Size: 1, Head: []byte(stamped)},
		{Queue: "empty"},
		{Queue: "future", Size: 1, Head: []byte(fmt.Sprintf(`{"class":"A","args":[],"enqueued_at":%d}`, t0.Add(time.Hour).Unix()))},
	}
	check := func(now time.Time, want ...time.Duration) {
		t.Helper()
		got := c.Latencies(heads, now)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Latencies at %v = %v, want %v", now.Sub(t0), got, want)
		}
	}
	check(t0, 0, 30*time.Second, 0, 0)
	check(t0.Add(10*time.Second), 10*time.Second, 40*time.Second, 0, 0)
	heads[0].Head = []byte(`{"class":"A","args":[2]}`) // the first was taken
	check(t0.Add(15*time.Second), 0, 45*time.Second, 0, 0)
	check(t0.Add(20*time.Second), 5*time.Second, 50*time.Second, 0, 0)
	// A queue that left the set is forgotten: back, it starts again.
	saved := heads
	heads = heads[1:]
	check(t0.Add(25*time.Second), 55*time.Second, 0, 0)
	heads = saved
	check(t0.Add(30*time.Second), 0, time.Minute, 0, 0)
}

func TestClient_DelayedCount(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	if jobs, tss, err := c.DelayedCount(ctx); jobs != 0 || tss != 0 || err != nil {
		t.Fatalf("DelayedCount on empty Redis = %d, %d, %v", jobs, tss, err)
	}
	// More timestamps than one batch, each with two items.
	const n = 1500
	args := []interface{}{queue.DelayedScheduleKey(ns)}
	for i := int64(0); i < n; i++ {
		ts := 1800000000 + i
		args = append(args, ts, ts)
		srv.Do(t, "RPUSH", queue.DelayedKey(ns, ts), `{"class":"A","args":[],"queue":"q"}`, `{"class":"B","args":[],"queue":"q"}`)
	}
	srv.Do(t, "ZADD", args...)
	if jobs, tss, err := c.DelayedCount(ctx); jobs != 2*n || tss != n || err != nil {
		t.Fatalf("DelayedCount = %d, %d, %v; want %d, %d", jobs, tss, err, 2*n, n)
	}
}

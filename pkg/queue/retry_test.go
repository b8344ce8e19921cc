package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
)

// RetryJob moves a failed job's next attempt into resque-scheduler's
// delayed layout, counting it processed but not failed.
func TestClient_RetryJob(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	id := "h:1:q"
	_ = c.Enqueue(ctx, "q", []byte(`{"class":"A","args":[1],"id":"tok"}`), queue.EnqueueOptions{})
	r, err := c.Fetcher(id).Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Decode(); err != nil {
		t.Fatal(err)
	}
	item, err := queue.RetryItem(&r.Job, 2)
	if err != nil {
		t.Fatal(err)
	}
	// The payload's bytes, fields in their order, "attempt" and "queue"
	// added last.
	if string(item) != `{"class":"A","args":[1],"id":"tok","attempt":2,"queue":"q"}` {
		t.Fatalf("item = %s", item)
	}
	at := time.Unix(1795800000, 0)
	if ok, err := c.RetryJob(ctx, r, at); !ok || err != nil {
		t.Fatalf("RetryJob = %v %v", ok, err)
	}
	if ok, _ := c.RetryJob(ctx, r, at); ok {
		t.Fatal("a second RetryJob of the same job acted")
	}
	if got, _ := redis.Strings(srv.Do(t, "LRANGE", queue.DelayedKey(ns, 1795800000), 0, -1), nil); len(got) != 1 || got[0] != string(item) {
		t.Errorf("delayed list = %v", got)
	}
	if got, _ := redis.Strings(srv.Do(t, "ZRANGE", queue.DelayedScheduleKey(ns), 0, -1, "WITHSCORES"), nil); len(got) != 2 || got[0] != "1795800000" || got[1] != "1795800000" {
		t.Errorf("schedule = %v", got)
	}
	if got, _ := redis.Strings(srv.Do(t, "SMEMBERS", queue.TimestampsKey(ns, string(item))), nil); len(got) != 1 || got[0] != "delayed:1795800000" {
		t.Errorf("timestamps set = %v", got)
	}
	// resque-retry's counter holds N-1 after attempt N; an untracked job
	// (no status key) is not indexed.
	rid, _ := queue.RetryIdentifier(r.Args)
	if v, _ := redis.String(srv.Do(t, "GET", queue.RetryAttemptKey(ns, "A", rid)), nil); v != "0" {
		t.Errorf("resque-retry counter = %q, want 0", v)
	}
	if ttl, _ := redis.Int(srv.Do(t, "TTL", queue.RetryAttemptKey(ns, "A", rid)), nil); ttl <= 0 {
		t.Errorf("resque-retry counter TTL = %d", ttl)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", queue.DelayedStatusKey(ns, queue.DelayedStatusDigest("q", "A", r.Args))), nil); n != 0 {
		t.Error("an untracked retry was indexed")
	}
	if n, _ := redis.Int(srv.Do(t, "GET", queue.StatKey(ns, "processed")), nil); n != 1 {
		t.Errorf("processed = %d", n)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", queue.StatKey(ns, "failed"), queue.FailedKey(ns), queue.WorkerKey(ns, id)), nil); n != 0 {
		t.Errorf("%d of failed stat, failed list, worker:<id> exist", n)
	}
}

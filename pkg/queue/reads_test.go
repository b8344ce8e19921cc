package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/resqued/resqued/pkg/queue"
)

func TestClient_Peek(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "q"), "a", "b", "c")
	got, err := c.Peek(ctx, "q", 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%s", got) != "[b c]" {
		t.Fatalf("Peek = %s, want [b c]", got)
	}
	if n, _ := c.Size(ctx, "q"); n != 3 {
		t.Fatalf("Peek took jobs: %d left", n)
	}
}

func TestClient_Counters(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	if p, f, err := c.Counters(ctx); p != 0 || f != 0 || err != nil {
		t.Fatalf("Counters on empty Redis = %d, %d, %v", p, f, err)
	}
	srv.Do(t, "SET", queue.StatKey(ns, "processed"), 7)
	srv.Do(t, "SET", queue.StatKey(ns, "failed"), 2)
	if p, f, err := c.Counters(ctx); p != 7 || f != 2 || err != nil {
		t.Fatalf("Counters = %d, %d, %v; want 7, 2", p, f, err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// One token wins a tick; it wins it again (a lost reply), another
// does not, and the lock expires.
func TestClient_ClaimTick(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	tick := time.Unix(1800000000, 0)
	for _, tc := range []struct {
		token string
		want  bool
	}{{"a", true}, {"a", true}, {"b", false}} {
		if got, err := c.ClaimTick(ctx, "hourly", tick, tc.token, time.Hour); got != tc.want || err != nil {
			t.Fatalf("ClaimTick(%s) = %v, %v; want %v", tc.token, got, err, tc.want)
		}
	}
	if got, err := c.ClaimTick(ctx, "hourly", tick.Add(time.Hour), "b", time.Hour); !got || err != nil {
		t.Fatalf("ClaimTick of the next tick = %v, %v", got, err)
	}
	ttl := srv.Do(t, "TTL", queue.ScheduleLockKey(ns, "hourly", tick.Unix()))
	if n, _ := ttl.(int64); n <= 0 || n > 3600 {
		t.Fatalf("lock TTL = %v", ttl)
	}
}

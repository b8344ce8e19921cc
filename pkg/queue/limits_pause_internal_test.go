package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
)

// A queue paused (or every worker paused) between the reserve that hands
// back a limited job and the acquire step that takes it: nothing is
// taken, the job stays at the head of its queue, and no slot is held.
func TestAcquire_PausedInBetween(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pause func(srv *redistest.Server, ns string)
		want  error
	}{
		{"queue", func(srv *redistest.Server, ns string) { srv.Do(t, "SET", QueuePauseKey(ns, "q"), "true") }, ErrNoJob},
		{"all workers", func(srv *redistest.Server, ns string) { srv.Do(t, "SET", PauseAllKey(ns), "true") }, ErrPausedAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			ns := "resque"
			c := New(srv.Pool(t), ns)
			ctx := context.Background()
			payload := `{"class":"Slow","args":[1]}`
			if err := c.Enqueue(ctx, "q", []byte(payload), EnqueueOptions{}); err != nil {
				t.Fatal(err)
			}
			lease := c.NewLease("h:1:q", "", 15*time.Second)
			if _, err := lease.Acquire(ctx); err != nil {
				t.Fatal(err)
			}
			f := lease.Fetcher()
			defer f.Close()
			paused := false
			beforeAcquire = func() {
				if !paused {
					paused = true
					tc.pause(srv, ns)
				}
			}
			defer func() { beforeAcquire = nil }()
			opt := ReserveOptions{Limits: NewLimits(map[string]ClassLimit{"Slow": {Concurrency: 1}})}
			r, err := f.Reserve(ctx, []string{"q"}, opt)
			if !errors.Is(err, tc.want) || r != nil {
				t.Fatalf("Reserve = %v, %v; want nothing taken (%v)", r, err, tc.want)
			}
			if !paused {
				t.Fatal("the reserve never handed back a candidate")
			}
			if got, _ := redis.Strings(srv.Do(t, "LRANGE", QueueKey(ns, "q"), 0, -1), nil); len(got) != 1 || got[0] != payload {
				t.Errorf("queue q = %q, want the job still there", got)
			}
			if n, _ := redis.Int(srv.Do(t, "ZCARD", ConcurrencyKey(ns, "Slow")), nil); n != 0 {
				t.Errorf("%d slots held, want none", n)
			}
			if n, _ := redis.Int(srv.Do(t, "EXISTS", WorkerKey(ns, "h:1:q")), nil); n != 0 {
				t.Errorf("worker:<id> holds a job")
			}
		})
	}
}

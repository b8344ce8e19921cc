package queue_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// reports collects what WithReplicaReport hears.
type reports struct {
	mu   sync.Mutex
	errs []error
}

func (r *reports) add(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }

func (r *reports) take() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.errs
	r.errs = nil
	return out
}

// ops is the Op of each report, "ok" for an acknowledged write.
func ops(errs []error) []string {
	var out []string
	for _, err := range errs {
		var na *queue.NotAcknowledgedError
		switch {
		case err == nil:
			out = append(out, "ok")
		case errors.As(err, &na):
			out = append(out, na.Op)
		default:
			out = append(out, "unexpected: "+err.Error())
		}
	}
	return out
}

// workOneOfEach takes the job path through every write that records or
// moves a job, on c: enqueue, reserve, release, reserve, retry (due at
// once), move delayed, reserve, finish, unregister. It returns the
// error of each write whose error the caller sees (enqueue).
func workOneOfEach(t *testing.T, c *queue.Client, id string) error {
	t.Helper()
	ctx := context.Background()
	enqErr := c.Enqueue(ctx, "q", []byte(`{"class":"A","args":[1],"id":"tok"}`), queue.EnqueueOptions{})
	if enqErr != nil && !errors.Is(enqErr, queue.ErrNotAcknowledged) {
		t.Fatalf("enqueue: %v", enqErr)
	}
	f := c.Fetcher(id)
	defer f.Close()
	reserve := func() *queue.Reserved {
		t.Helper()
		r, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
		if err != nil {
			t.Fatalf("reserve: %v", err)
		}
		if err := r.Decode(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if err := c.Release(ctx, reserve()); err != nil {
		t.Fatalf("release: %v", err)
	}
	if ok, err := c.RetryJob(ctx, reserve(), time.Now().Add(-time.Second)); !ok || err != nil {
		t.Fatalf("RetryJob = %v %v", ok, err)
	}
	tss, err := c.DueTimestamps(ctx, time.Now(), 0, 10)
	if err != nil || len(tss) != 1 {
		t.Fatalf("due timestamps = %v %v", tss, err)
	}
	if b, err := c.MoveDelayed(ctx, tss[0], 10); err != nil || b.Moved != 1 {
		t.Fatalf("MoveDelayed = %+v %v", b, err)
	}
	if ok, err := c.FinishJob(ctx, reserve(), queue.Outcome{}); !ok || err != nil {
		t.Fatalf("FinishJob = %v %v", ok, err)
	}
	if done, err := c.UnregisterDead(ctx, id, "", nil); done != queue.UnregisteredOK || err != nil {
		t.Fatalf("UnregisterDead = %v %v", done, err)
	}
	return enqErr
}

var workerSideOps = []string{"reserve job", "release job", "reserve job", "retry job", "move delayed jobs of", "reserve job", "finish job", "unregister dead worker"}

// With WithMinReplicas every write that records or moves a job waits
// for the replica: acknowledged, the replica holds the write the moment
// the call returns; with the replica stopped, each write still happens
// on the master, the enqueue says it was not acknowledged, the worker's
// writes say so to the report function, and nothing fails.
func TestClient_MinReplicas(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	var rep reports
	const timeout = 300 * time.Millisecond
	ns := "resque"
	// Acknowledged writes get time to spare on a loaded machine; the
	// stopped replica's writes wait out the short timeout.
	pool := master.Pool(t)
	slow := queue.New(pool, ns, queue.WithMinReplicas(1, 10*time.Second), queue.WithReplicaReport(rep.add))
	c := queue.New(pool, ns, queue.WithMinReplicas(1, timeout), queue.WithReplicaReport(rep.add))
	processed := queue.StatKey(ns, "processed")

	t.Run("Acknowledged", func(t *testing.T) {
		if err := workOneOfEach(t, slow, "h:1:q"); err != nil {
			t.Fatalf("enqueue with a live replica: %v", err)
		}
		want := make([]string, len(workerSideOps))
		for i := range want {
			want[i] = "ok"
		}
		if got := ops(rep.take()); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("reports = %q, want %q", got, want)
		}
		// WAIT returned: the replica has every write already, no polling.
		if n, _ := redis.Int(replica.Do(t, "GET", processed), nil); n != 2 {
			t.Errorf("replica's stat:processed = %d, want 2 (the retry and the finish)", n)
		}
		if n, _ := redis.Int(replica.Do(t, "EXISTS", queue.WorkerKey(ns, "h:1:q")), nil); n != 0 {
			t.Errorf("replica still holds worker:<id>")
		}
	})

	t.Run("ReplicaStopped", func(t *testing.T) {
		if !replica.Signal(syscall.SIGSTOP) {
			t.Fatal("replica not running")
		}
		t.Cleanup(func() { replica.Signal(syscall.SIGCONT) })
		start := time.Now()
		err := workOneOfEach(t, c, "h:2:q")
		var na *queue.NotAcknowledgedError
		if !errors.As(err, &na) || na.Got != 0 || na.Want != 1 || na.Timeout != timeout {
			t.Fatalf("enqueue with the replica stopped: %v, want 0 of 1 acknowledged", err)
		}
		if want := "enqueue to q: only 0 of 1 replicas acknowledged within 300ms"; err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
		if got := ops(rep.take()); strings.Join(got, ",") != strings.Join(workerSideOps, ",") {
			t.Errorf("reports = %q, want %q", got, workerSideOps)
		}
		t.Logf("9 writes against a stopped replica took %s (WAIT timeout %s each)", time.Since(start).Round(time.Millisecond), timeout)
		// The master made every write: the job ran through to the end.
		if n, _ := redis.Int(master.Do(t, "GET", processed), nil); n != 4 {
			t.Errorf("master's stat:processed = %d, want 4", n)
		}
		if !replica.Signal(syscall.SIGCONT) {
			t.Fatal("replica not running")
		}
		redistest.Eventually(t, 10*time.Second, func() bool {
			n, _ := redis.Int(replica.Do(t, "GET", processed), nil)
			return n == 4
		}, "the resumed replica did not catch up")
		if err := slow.Enqueue(context.Background(), "q", []byte(`{"class":"A","args":[]}`), queue.EnqueueOptions{}); err != nil {
			t.Errorf("enqueue once the replica is back: %v", err)
		}
	})
}

// Without WithMinReplicas no write waits: the server never sees a WAIT.
func TestClient_NoMinReplicas(t *testing.T) {
	master := redistest.Start(t)
	var rep reports
	c := queue.New(master.Pool(t), "resque", queue.WithReplicaReport(rep.add))
	if err := workOneOfEach(t, c, "h:1:q"); err != nil {
		t.Fatal(err)
	}
	if got := rep.take(); len(got) != 0 {
		t.Errorf("reports without min replicas: %v", got)
	}
	info, _ := redis.String(master.Do(t, "INFO", "commandstats"), nil)
	if strings.Contains(info, "cmdstat_wait:") {
		t.Errorf("a WAIT was sent without min replicas:\n%s", info)
	}
	if !strings.Contains(info, "cmdstat_evalsha:") && !strings.Contains(info, "cmdstat_eval:") {
		t.Errorf("no script ran: the check above proves nothing:\n%s", info)
	}
}

// BenchmarkClient_JobCycle is one job's writes (enqueue, reserve,
// finish) against a master with one replica, without and with
// WithMinReplicas(1): what waiting for the replica costs per job.
func BenchmarkClient_JobCycle(b *testing.B) {
	master := redistest.Start(b)
	redistest.StartReplica(b, master)
	for _, bc := range []struct {
		name string
		opts []queue.Option
	}{{"NoWait", nil}, {"MinReplicas1", []queue.Option{queue.WithMinReplicas(1, time.Second)}}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			c := queue.New(master.Pool(b), "bench-"+bc.name, bc.opts...)
			f := c.Fetcher("h:1:q")
			defer f.Close()
			p := []byte(`{"class":"A","args":[1]}`)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.Enqueue(ctx, "q", p, queue.EnqueueOptions{}); err != nil {
					b.Fatal(err)
				}
				r, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if ok, err := c.FinishJob(ctx, r, queue.Outcome{}); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

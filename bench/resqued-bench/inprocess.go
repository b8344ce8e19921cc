package main

// The in-process comparison: the shape of Ruby Resque's non-forking mode
// (FORK_PER_JOB=false), written in Go. P goroutines each act as one
// worker with its own worker id, take the bench's jobs with the same
// Redis bookkeeping as resqued (lease, registration, the script that
// records one job's outcome and takes the next into worker:<id>, the
// counters and status) through the
// module's public pkg/queue API, and call a no-op Go function instead of
// a handler: no process, no pipe, no isolation. It is the floor a
// persistent handler's resqued is compared with.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
)

// inprocResult is one in-process drain.
type inprocResult struct {
	wall     time.Duration // from starting the workers to their unregistering
	cpu      time.Duration // this process's CPU (RUSAGE_SELF), per job
	redisCPU time.Duration // CPU of redis-server, per job
}

// inprocessDrain pre-enqueues n Noop jobs, as every drain does, and
// drains them with par in-process workers, checking that all n ran once
// with none failed and none left.
func (b *bench) inprocessDrain(n, par int) (inprocResult, error) {
	var r inprocResult
	if err := b.srv.flush(); err != nil {
		return r, err
	}
	if err := b.srv.preEnqueue("Noop", n); err != nil {
		return r, err
	}
	redis0, err := b.srv.cpu()
	if err != nil {
		return r, err
	}
	cpu0 := selfCPU()
	start := time.Now()
	errs := make([]error, par)
	var wg sync.WaitGroup
	for i := 0; i < par; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = b.inprocWorker(i) }()
	}
	wg.Wait()
	r.wall = time.Since(start)
	r.cpu = (selfCPU() - cpu0) / time.Duration(n)
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	redis1, err := b.srv.cpu()
	if err != nil {
		return r, err
	}
	r.redisCPU = (redis1 - redis0) / time.Duration(n)
	return r, b.srv.checkDrained(n)
}

// inprocWorker is one worker: its own connections (as a worker process
// has), lease and registration, then jobs until the queue is empty
// (INTERVAL=0), then unregistration.
func (b *bench) inprocWorker(i int) error {
	pool := &redis.Pool{MaxIdle: 2, DialContext: func(ctx context.Context) (redis.Conn, error) {
		return redis.DialContext(ctx, "tcp", b.srv.addr)
	}}
	defer pool.Close()
	c := queue.New(pool, "resque")
	ctx := context.Background()
	// Ruby's id is host:pid:queues; the workers share this process's
	// pid, so the host part tells them apart.
	id := queue.WorkerID(fmt.Sprintf("%s-inproc%d", queue.Hostname(), i), syscall.Getpid(), []string{benchQueue})
	lease := c.NewLease(id, "", 6*time.Second) // pkg/worker's default TTL
	if _, err := lease.Acquire(ctx); err != nil {
		return err
	}
	if err := c.RegisterWorker(ctx, id, time.Now()); err != nil {
		return err
	}
	f := lease.Fetcher()
	defer f.Close()
	var done *queue.Reserved // the job run last, not yet recorded
	for {
		r, err := finishAndReserve(ctx, f, done)
		if errors.Is(err, queue.ErrNoJob) {
			break
		}
		if err != nil {
			return fmt.Errorf("in-process worker %d: %w", i, err)
		}
		if err := r.Decode(); err != nil {
			return fmt.Errorf("in-process worker %d: %w", i, err)
		}
		noopJob(r.Class, r.Args)
		done = r
	}
	return c.UnregisterWorker(ctx, id, lease.Token)
}

// finishAndReserve records done (when not nil) as a success and takes
// the next job, in one script, as a resqued worker does
// (queue.Fetcher.FinishAndReserve); the first job is taken by a plain
// reserve. It returns queue.ErrNoJob once the queue is empty, done
// recorded. The running mark of a tracked job is made before it returns
// (no DeferRunning), as a caller that does nothing meanwhile would.
func finishAndReserve(ctx context.Context, f *queue.Fetcher, done *queue.Reserved) (*queue.Reserved, error) {
	queues := []string{benchQueue}
	if done == nil {
		return f.Reserve(ctx, queues, queue.ReserveOptions{})
	}
	recorded, next, err := f.FinishAndReserve(ctx, done, queue.Outcome{}, queues, queue.ReserveOptions{})
	if err == nil && !recorded {
		return nil, fmt.Errorf("job %s not recorded: no longer in %s", done.ID, done.Worker)
	}
	return next, err
}

// noopJob is the job's code: nothing, as the Noop handler does nothing.
//
//go:noinline
func noopJob(class string, args []byte) {}

// selfCPU is this process's user and system CPU so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return rusageCPU(&ru)
}

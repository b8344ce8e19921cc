package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/snooze"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/status"
)

// Cancelling a job from any host. The requester (Canceller: resqued
// cancel, the dashboard) finds the job; one not yet started it removes
// from its queue or the delayed set itself. For a running one it pushes
// a request onto the running worker's cancel list (queue.RequestCancel),
// on which that worker waits while the job runs: it stops the handler's
// process group (TERM, KILL after the grace period) and records the job
// as failed with ExcCancelled.

// cancelWatchDelay is how long a job runs before its worker starts
// waiting for cancel requests: a job shorter than that costs no command
// for it, and a request pushed meanwhile waits in the list and is taken
// at once when the wait starts, well within the 1 s a cancel promises.
const cancelWatchDelay = 100 * time.Millisecond

// cancelPoll is the timeout of each wait for cancel requests. The wait
// is unblocked at once when the job ends, so this bounds only how often
// a long job's worker sends the blocking pop again.
const cancelPoll = 5 * time.Second

// watchCancel waits, until the returned stop is called, for cancel
// requests of running job r, and stops it when one comes. stop ends the
// wait and returns once it has ended.
//
// The wait starts only once the job has run cancelWatchDelay: a shorter
// job, most of them, costs a timer, not a goroutine.
func (w *Worker) watchCancel(log hclog.Logger, r *queue.Reserved) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t := time.AfterFunc(cancelWatchDelay, func() { defer close(done); w.awaitCancel(ctx, log, r) })
	return func() {
		cancel()
		if !t.Stop() {
			<-done // it had started: wait for it to end
		}
	}
}

func (w *Worker) awaitCancel(ctx context.Context, log hclog.Logger, r *queue.Reserved) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		req, err := w.cancels.Next(ctx, cancelPoll)
		switch {
		case errors.Is(err, queue.ErrInvalidPayload):
			log.Warn("ignoring a cancel request that is not one", "error", err)
			continue
		case err != nil:
			// Redis away: the job runs on; the request, if any, waits
			// in the list until the wait resumes.
			log.Debug("wait for cancel requests", "error", err)
			snooze.For(ctx, pause)
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 100 * time.Millisecond
		if req == nil {
			continue
		}
		if req.Record != r.Record {
			log.Debug("ignoring a cancel request for a job no longer running", "by", req.By, "cancel_id", req.ID, "at", req.At)
			continue
		}
		log.Info("job cancel requested: stopping the handler", "by", req.By)
		w.mu.Lock()
		w.cancelled = req
		w.mu.Unlock()
		w.stopCurrent(req.Describe(), false)
		return
	}
}

// cancelRequest returns the cancel request that stopped the current
// job, if one did.
func (w *Worker) cancelRequest() *queue.CancelRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cancelled
}

// cancelledOutcome is the failure recorded for a job stopped by cancel
// request c: ExcCancelled, who asked and when, how the handler ended,
// and its stderr tail.
func cancelledOutcome(c *queue.CancelRequest, runErr error, res *runner.Result) queue.Outcome {
	o := queue.Outcome{Exception: ExcCancelled, Error: c.Describe(), At: time.Now()}
	var ee *runner.ExitError
	switch {
	case errors.As(runErr, &ee):
		o.Error += " (" + ee.Error() + ")"
		o.Backtrace = ee.StderrTail
	case runErr == nil:
		// It exited 0 after the SIGTERM: whether it finished or gave up
		// cleanly, it was stopped on request.
		o.Error += " (the handler exited 0 after SIGTERM)"
		o.Backtrace = res.StderrTail
	case res != nil:
		o.Backtrace = res.StderrTail
	}
	return o
}

// Canceller cancels jobs for an operator: resqued cancel and the
// dashboard's Cancel buttons. A job not yet started is removed from its
// queue, or from the delayed set; a running one is stopped by the worker
// running it, on whichever host, which records it as failed with
// ExcCancelled. A tracked job's status becomes failed in every case.
type Canceller struct {
	// Queue is required.
	Queue *queue.Client
	// Status, when set, lets Cancel say that a job it did not find had
	// ended (its status says complete or failed).
	Status *status.Tracker
	// Wait is how long Cancel waits for the worker to record a running
	// job's outcome: it should exceed the workers' --term-timeout. Zero
	// means 10 s; negative means not to wait (the outcome is then
	// CancelRequested).
	Wait time.Duration
}

// CancelOutcome is what a cancel did.
type CancelOutcome int

// The outcomes of a cancel.
const (
	// CancelledRunning: the worker stopped the job and recorded it as
	// failed with ExcCancelled.
	CancelledRunning CancelOutcome = iota + 1
	// RemovedQueued: the job was taken off its queue before it started.
	RemovedQueued
	// RemovedDelayed: the job was taken out of the delayed set.
	RemovedDelayed
	// FinishedFirst: the job ended before its worker acted on the
	// request.
	FinishedFirst
	// CancelRequested: the request was delivered; its outcome was not
	// waited for (Canceller.Wait negative) or not seen in time.
	CancelRequested
)

// Cancelled says what a cancel did and to which job.
type Cancelled struct {
	How CancelOutcome
	// ID is the job's id, when it has one.
	ID string
	// Worker ran the job (CancelledRunning, FinishedFirst,
	// CancelRequested); Queue held it or ran it.
	Worker, Queue string
	// DueAt is when a removed delayed job was due.
	DueAt time.Time
	// Failure is the record the worker wrote (CancelledRunning).
	Failure *queue.Failure
	// Waited is how long Cancel waited for the worker (CancelRequested).
	Waited time.Duration
}

// String says what happened in one line.
func (c *Cancelled) String() string {
	job := "job"
	if c.ID != "" {
		job = "job " + c.ID
	}
	switch c.How {
	case CancelledRunning:
		return fmt.Sprintf("%s cancelled while running on worker %s (recorded as failed, %s)", job, c.Worker, ExcCancelled)
	case RemovedQueued:
		return fmt.Sprintf("%s removed from queue %s before it started", job, c.Queue)
	case RemovedDelayed:
		return fmt.Sprintf("%s removed from the delayed set (was due at %s)", job, c.DueAt.UTC().Format(time.RFC3339))
	case FinishedFirst:
		return fmt.Sprintf("%s finished on worker %s before the cancel reached it", job, c.Worker)
	}
	if c.Waited > 0 {
		return fmt.Sprintf("cancel of %s requested from worker %s, which had not recorded the outcome %s later (is it a resqued worker, and does it reach Redis?)", job, c.Worker, c.Waited)
	}
	return fmt.Sprintf("cancel of %s requested from worker %s", job, c.Worker)
}

// ErrNothingToCancel is returned when the job or worker asked for is not
// there to cancel: finished, idle, or never existed.
var ErrNothingToCancel = errors.New("nothing to cancel")

// nothing is ErrNothingToCancel with a sentence of its own.
type nothing string

func (e nothing) Error() string        { return string(e) }
func (e nothing) Is(target error) bool { return target == ErrNothingToCancel }

// CancelJob cancels the job whose id (payload "id", php-resque status
// token) is id, on behalf of by ("alice@web-3 (resqued cancel)"). It
// looks in the order jobs move, delayed, then queued, then running, so
// that a job on its way is found in the next place; one that moved
// between the look and the removal is looked for again.
func (c *Canceller) CancelJob(ctx context.Context, id, by string) (*Cancelled, error) {
	if err := queue.ValidateJobID(id); err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 3; attempt++ {
		now := time.Now()
		why := fmt.Sprintf("cancelled by %s at %s, before it started", by, now.UTC().Format(time.RFC3339))
		at, err := c.Queue.RemoveDelayed(ctx, id, why, now)
		if err == nil {
			return &Cancelled{How: RemovedDelayed, ID: id, DueAt: at}, nil
		} else if !errors.Is(err, queue.ErrNotDelayed) {
			return nil, err
		}
		q, err := c.Queue.RemoveQueued(ctx, id, why, now)
		if err == nil {
			return &Cancelled{How: RemovedQueued, ID: id, Queue: q}, nil
		} else if !errors.Is(err, queue.ErrNotQueued) {
			return nil, err
		}
		j, err := c.Queue.FindRunning(ctx, id)
		if errors.Is(err, queue.ErrNotRunning) {
			continue
		} else if err != nil {
			return nil, err
		}
		res, err := c.stop(ctx, j, by)
		if errors.Is(err, errMoved) {
			continue
		}
		return res, err
	}
	msg := fmt.Sprintf("job %s is not queued, delayed or running (finished, or never existed)", id)
	if c.Status != nil {
		if s, err := c.Status.Get(ctx, id); err == nil && s.Code.Final() {
			msg = fmt.Sprintf("job %s is not queued, delayed or running: its status says %s", id, s.Code)
		}
	}
	return nil, nothing(msg)
}

// CancelWorker cancels whatever job worker runs, on behalf of by.
func (c *Canceller) CancelWorker(ctx context.Context, worker, by string) (*Cancelled, error) {
	j, err := c.Queue.RunningOn(ctx, worker)
	if err == nil {
		res, err := c.stop(ctx, j, by)
		if !errors.Is(err, errMoved) {
			return res, err
		}
	} else if !errors.Is(err, queue.ErrNotRunning) {
		return nil, err
	}
	ids, err := c.Queue.Workers(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if id == worker {
			return nil, nothing(fmt.Sprintf("worker %s runs no job (idle or paused)", worker))
		}
	}
	return nil, nothing(fmt.Sprintf("no worker %s is registered (resqued workers lists them)", worker))
}

// errMoved: the job left the worker between the look and the request.
var errMoved = errors.New("job moved")

// stop asks j's worker to stop j and waits, up to c.Wait, for the
// worker to record the outcome.
func (c *Canceller) stop(ctx context.Context, j *queue.RunningJob, by string) (*Cancelled, error) {
	ok, err := c.Queue.RequestCancel(ctx, j, by, time.Now())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errMoved
	}
	res := &Cancelled{How: CancelRequested, ID: j.ID, Worker: j.Worker, Queue: j.Queue}
	wait := c.Wait
	if wait == 0 {
		wait = 10 * time.Second
	}
	if wait < 0 {
		return res, nil
	}
	start := time.Now()
	for {
		running, err := c.Queue.StillRunning(ctx, j)
		if err != nil {
			return nil, err
		}
		if !running {
			break
		}
		if time.Since(start) >= wait || ctx.Err() != nil {
			res.Waited = time.Since(start).Round(time.Second)
			return res, nil
		}
		snooze.For(ctx, 50*time.Millisecond)
	}
	f, err := c.Queue.FindFailure(ctx, j, ExcCancelled)
	if err != nil {
		return nil, err
	}
	res.How, res.Failure = FinishedFirst, f
	if f != nil {
		res.How = CancelledRunning
	}
	return res, nil
}

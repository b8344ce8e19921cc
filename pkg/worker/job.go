package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/outage"
	"github.com/resqued/resqued/pkg/metrics"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/status"
)

// Exception names in failure records. Resque's tools show them as the
// failure's class; docs/handlers.md lists them.
const (
	ExcInvalidPayload = "Resqued::InvalidPayload"
	ExcInvalidClass   = "Resqued::InvalidClass"
	ExcNoHandler      = "Resqued::NoHandler"
	ExcStartFailed    = "Resqued::StartFailed"
	ExcHandlerFailed  = "Resqued::HandlerFailed"
	ExcTimeout        = "Resqued::Timeout"
	// ExcDirtyExit is Ruby Resque's name for a job whose process died
	// by a signal, including one the worker sent on TERM or USR1.
	ExcDirtyExit = "Resque::DirtyExit"
)

// process runs one reserved job to its recorded end.
func (w *Worker) process(r *queue.Reserved) {
	w.mu.Lock()
	w.inJob, w.killed, w.force = true, "", false
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inJob = false
		w.mu.Unlock()
	}()
	start := time.Now()
	q, payload := r.Queue, r.Payload
	var job *queue.Job
	var err error
	if max := w.cfg.MaxPayload; max > 0 && len(payload) > max {
		job = &queue.Job{Queue: q, Payload: payload}
		err = fmt.Errorf("%w: %d bytes, over the %d-byte limit (--max-payload)", queue.ErrInvalidPayload, len(payload), max)
	} else {
		job, err = queue.Decode(q, payload)
	}
	if err != nil {
		w.log.Error("job failed", "queue", q, "outcome", ExcInvalidPayload, "error", err)
		w.finish(job, r, queue.NewFailure(time.Now(), payload, ExcInvalidPayload, err.Error(), nil, w.id, q))
		return
	}
	w.restore(job, r) // what a Ruby resque-scheduler dropped: id, attempt
	if r.StatusID == "" {
		r.StatusID = job.ID // the outcome is recorded under a restored token too
	}
	log := w.log.With("queue", q, "class", job.Class, "job_id", job.ID)
	outcome, observe := metrics.OutcomeFailed, w.cfg.Jobs.Start(job.Class)
	defer func() { observe(outcome) }()

	w.cfg.SetTitle(fmt.Sprintf("Processing %s since %d [%s]", q, start.Unix(), job.Class))
	// A tracked job's status turned running in the reserve script.
	log.Info("job started")

	res, runErr := w.run(log, job)
	dur := time.Since(start)
	if runErr == nil {
		log.Info("job done", "outcome", "ok", "duration", dur)
		if res.Report.Result != nil {
			// Before the outcome, so whoever sees "complete" sees the result.
			w.annotate(log, job, status.Detail{Result: res.Report.Result})
		}
		outcome = metrics.OutcomeOK
		w.finish(job, r, nil)
		return
	}
	exc, msg, backtrace := Describe(runErr, res)
	w.mu.Lock()
	why := w.killed
	w.mu.Unlock()
	if why != "" && (exc == ExcDirtyExit || exc == ExcHandlerFailed) {
		msg += " (" + why + ")"
	}
	if w.retryLater(log, job, r, runErr) {
		outcome = metrics.OutcomeRetried
		return
	}
	if job.Attempt > 1 {
		msg += fmt.Sprintf(" (attempt %d)", job.Attempt)
	}
	log.Warn("job failed", "outcome", exc, "error", msg, "duration", dur)
	w.annotate(log, job, status.Detail{Error: exc + ": " + msg})
	w.finish(job, r, queue.NewFailure(time.Now(), payload, exc, msg, backtrace, w.id, q))
}

// annotate adds d to a tracked job's status; a failure only costs the
// detail, never the outcome.
func (w *Worker) annotate(log hclog.Logger, job *queue.Job, d status.Detail) {
	if job.ID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.cfg.Status.Annotate(ctx, job.ID, d); err != nil {
		log.Warn("record result detail in status", "error", err)
	}
}

// run starts the job's handler and waits for it, keeping it reachable
// for Terminate, Force and KillJob meanwhile.
func (w *Worker) run(log hclog.Logger, job *queue.Job) (*runner.Result, error) {
	var onProgress func(runner.Progress)
	if job.ID != "" {
		rec := &progressRecorder{w: w, log: log, id: job.ID}
		onProgress = rec.report
		defer rec.flush() // the handler has exited: no more reports
	}
	p, err := w.slot.Start(context.Background(), runner.Job{
		Class:      job.Class,
		Queue:      job.Queue,
		ID:         job.ID,
		Worker:     w.id,
		Args:       job.Args,
		Attempt:    job.Attempt,
		Logger:     log.Named("handler"),
		OnProgress: onProgress,
	})
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.current = p
	pending, force := w.killed != "", w.force
	w.mu.Unlock()
	// A stop that arrived while the handler was starting applies now.
	switch {
	case force:
		p.Kill()
	case pending:
		p.Stop()
	}
	res, err := p.Wait()
	w.mu.Lock()
	w.current = nil
	w.mu.Unlock()
	return res, err
}

// progressRecorder writes a tracked job's progress into its status, at
// most every 100 ms; flush writes the last report of a burst.
type progressRecorder struct {
	w       *Worker
	log     hclog.Logger
	id      string
	last    time.Time
	pending *runner.Progress
}

func (p *progressRecorder) report(r runner.Progress) {
	if time.Since(p.last) < 100*time.Millisecond && r.Progress < 1 {
		p.pending = &r
		return
	}
	p.pending = nil
	p.last = time.Now()
	v := r.Progress
	p.w.annotate(p.log, &queue.Job{ID: p.id}, status.Detail{Progress: &v, Message: r.Message})
}

func (p *progressRecorder) flush() {
	if p.pending != nil {
		p.last = time.Time{}
		p.report(*p.pending)
	}
}

// Describe turns a run error into the failure record's exception, error
// and backtrace (the handler's stderr tail) that a worker records. A
// handler that exited nonzero on its own may have said better on its
// result descriptor. resqued try prints the same.
func Describe(err error, res *runner.Result) (exc, msg string, backtrace []string) {
	var ee *runner.ExitError
	switch {
	case errors.As(err, &ee):
		switch {
		case ee.TimedOut:
			exc = ExcTimeout
		case ee.Signal != 0:
			exc = ExcDirtyExit
		default:
			exc = ExcHandlerFailed
		}
		msg, backtrace = ee.Error(), ee.StderrTail
		if d := res.Report.Failure; d != nil && exc == ExcHandlerFailed && !ee.Stopped {
			if d.Exception != "" {
				exc = d.Exception
			}
			if d.Error != "" {
				msg = d.Error
			}
			if d.Backtrace != nil {
				backtrace = d.Backtrace
			}
		}
		return exc, msg, backtrace
	case errors.Is(err, runner.ErrInvalidClass):
		exc = ExcInvalidClass
	case errors.Is(err, runner.ErrNoHandler), errors.Is(err, runner.ErrAmbiguous), errors.Is(err, runner.ErrNotExecutable):
		exc = ExcNoHandler
	default:
		exc = ExcStartFailed
	}
	if res != nil {
		backtrace = res.StderrTail
	}
	return exc, err.Error(), backtrace
}

// finish records the job's outcome (f == nil for success) and, in the
// same atomic step, its status.
// While Redis is away the outcome waits here, in memory, and the job
// stays in worker:<id>: if this process dies meanwhile, the job is
// recovered from there.
func (w *Worker) finish(job *queue.Job, r *queue.Reserved, f *queue.Failure) {
	var recorded, taken bool
	err := w.retry(context.Background(), "record job outcome", func(ctx context.Context) error {
		var err error
		recorded, err = w.cfg.Queue.FinishJob(ctx, w.id, r, f)
		if errors.Is(err, queue.ErrNotOwner) {
			taken, err = true, nil
		}
		return err
	})
	switch {
	case taken:
		w.log.Error("job outcome not recorded: another process has taken over this worker's id and recovers its job, which will run again; stopping",
			"queue", job.Queue, "payload", string(job.Payload), "failure", f)
		w.Terminate()
		return
	case err != nil:
		w.log.Error("job outcome not recorded: redis unreachable at shutdown; the job stays in worker:<id> for recovery",
			"queue", job.Queue, "payload", string(job.Payload), "failure", f, "error", err)
		return
	case !recorded:
		w.log.Warn("job outcome not recorded: the job was no longer in worker:<id> (recorded already, or recovered by a pruner)",
			"queue", job.Queue, "payload", string(job.Payload))
	default:
		w.forgetAttempts(job)
	}
}

// retry runs f until it succeeds, backing off while Redis is away. It
// gives up only once the worker is terminating and f still fails, so a
// QUIT waits for Redis to record outcomes but a TERM does not hang.
func (w *Worker) retry(ctx context.Context, what string, f func(context.Context) error) error {
	return w.retryUntil(ctx, what, func(s state) bool { return s.term }, f)
}

// retryUntil is retry with its own condition for giving up.
func (w *Worker) retryUntil(ctx context.Context, what string, giveUp func(state) bool, f func(context.Context) error) error {
	b := newBackoff()
	defer b.reset(w.log)
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		s, wake := w.snapshot()
		if giveUp(s) {
			return err
		}
		b.fail(w.log, fmt.Errorf("%s: %w", what, err))
		b.wait(wake)
	}
}

// backoff is the shared outage backoff (internal/outage), under the names
// the worker's loops call it by: capped exponential, 100ms doubling to 1s,
// so that work resumes within a second of Redis coming back. It logs the
// first failure of a streak at Error, later ones at Debug, and the
// recovery at Info.
type backoff struct{ b *outage.Backoff }

func newBackoff() backoff { return backoff{outage.NewBackoff()} }

func (b backoff) fail(log hclog.Logger, err error) { b.b.Fail(log, err) }
func (b backoff) reset(log hclog.Logger)           { b.b.Reset(log) }
func (b backoff) wait(wake <-chan struct{})        { b.b.Wait(wake) }

// wrap is fmt.Errorf("%s: %w", what, err), or nil for a nil err.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// retryLater schedules the job's next attempt when its retry policy says
// so, and reports whether it did. Only a handler's own failure (an exit
// status, or with exit_codes [-1] a signal or timeout too) is retried; a
// job stopped by the worker, a missing handler or a bad payload is not.
func (w *Worker) retryLater(log hclog.Logger, job *queue.Job, r *queue.Reserved, runErr error) bool {
	var ee *runner.ExitError
	if !errors.As(runErr, &ee) || ee.Stopped {
		return false
	}
	code := ee.Code
	if ee.Signal != 0 || ee.TimedOut || ee.Protocol != "" {
		code = -1
	}
	ok, after := w.cfg.Retry.For(job.Class, job.Retry).Decide(job.Attempt, code)
	if !ok {
		return false
	}
	item, err := queue.RetryItem(job, job.Attempt+1)
	if err != nil {
		return false
	}
	at := time.Now().Add(after)
	var done bool
	err = w.retry(context.Background(), "schedule retry", func(ctx context.Context) error {
		done, err = w.cfg.Queue.RetryJob(ctx, w.id, r.Record, job, item, at)
		return err
	})
	if err != nil {
		// Redis away at a TERM: the job stays in worker:<id> for recovery.
		log.Error("retry not scheduled: redis unreachable; the job stays in worker:<id> for recovery", "error", err)
		return true
	}
	if done {
		log.Warn("job failed, will retry", "error", runErr, "attempt", job.Attempt, "next_attempt_at", at.UTC().Format(time.RFC3339))
	}
	return true
}

// restore gives job back what a Ruby resque-scheduler drops when it moves
// a delayed job to its queue (only class, args and queue survive): the
// status token of a tracked job, and for a class that is retried the
// attempt, from resque-retry's counter. Best effort: on a Redis error the
// job runs as it came (untracked, attempt 1), as it did before.
func (w *Worker) restore(job *queue.Job, r *queue.Reserved) {
	opt := queue.RestoreOptions{Attempt: !job.HasAttempt && w.cfg.Retry.For(job.Class, job.Retry).Attempts > 1}
	if (job.ID != "" || !r.DelayedStatus) && !opt.Attempt {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opt.NoStatus = !r.DelayedStatus
	if err := w.cfg.Queue.Restore(ctx, w.id, r.Record, job, opt); err != nil {
		w.log.Warn("restore what a ruby scheduler dropped", "queue", job.Queue, "class", job.Class, "error", err)
	}
}

// forgetAttempts deletes the resque-retry counter of a job that ended for
// good, as resque-retry does after a success or a final failure. Only a
// retried job (or one whose counter Restore found) can have one.
func (w *Worker) forgetAttempts(job *queue.Job) {
	if job.Class == "" || (job.Attempt < 2 && !job.RetryCounted) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.cfg.Queue.ForgetAttempts(ctx, job); err != nil {
		w.log.Warn("delete resque-retry counter", "queue", job.Queue, "class", job.Class, "error", err)
	}
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/outage"
	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/metrics"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/retry"
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
	// ExcDuplicateJob is a unique job (its payload's "unique") that
	// did not run because another copy of it holds its lock.
	ExcDuplicateJob = "Resqued::DuplicateJob"
	// ExcCancelled is a job stopped at an operator's request (resqued
	// cancel, the dashboard's Cancel button); it is never retried.
	ExcCancelled = "Resqued::Cancelled"
	// A handler killed at one of its limits (runner.Limits), by
	// resqued or by the kernel.
	ExcMemoryLimit  = "Resqued::MemoryLimit"
	ExcCPULimit     = "Resqued::CPULimit"
	ExcOutputLimit  = "Resqued::OutputLimit"
	ExcProcessLimit = "Resqued::ProcessLimit"
)

// limitExceptions maps runner.ExitError.Limit to the failure's
// exception.
var limitExceptions = map[string]string{
	runner.LimitMemory: ExcMemoryLimit,
	runner.LimitCPU:    ExcCPULimit,
	runner.LimitOutput: ExcOutputLimit,
	runner.LimitProcs:  ExcProcessLimit,
}

// process runs one reserved job to its recorded end. r is the one value
// the job is carried in, from the reserve script to the outcome script.
// It returns the next job when the outcome script reserved one in the
// same step (finish).
func (w *Worker) process(r *queue.Reserved) *queue.Reserved {
	w.mu.Lock()
	w.inJob, w.killed, w.force, w.cancelled = true, "", false, nil
	w.mu.Unlock()
	w.history.SetState(history.Busy)
	defer func() {
		w.history.SetState(history.Idle)
		w.mu.Lock()
		w.inJob = false
		w.mu.Unlock()
	}()
	if len(r.Slots) > 0 {
		// Freed once the outcome is recorded (finish, retry): until
		// then the job counts against its limits.
		defer w.freeSlot(r)
	}
	start := time.Now()
	var err error
	if max := w.cfg.MaxPayload; max > 0 && len(r.Payload) > max {
		err = fmt.Errorf("%w: %d bytes, over the %d-byte limit (--max-payload)", queue.ErrInvalidPayload, len(r.Payload), max)
	} else {
		err = r.Decode()
	}
	if err != nil {
		w.log.Error("job failed", "queue", r.Queue, "outcome", ExcInvalidPayload, "error", err)
		w.history.Job(r.Queue, "", true, time.Since(start)) // no class to count it under
		return w.finish(r, queue.Outcome{Exception: ExcInvalidPayload, Error: err.Error()})
	}
	// What a Ruby resque-scheduler dropped: id, attempt. The outcome is
	// recorded under a restored token too.
	w.restore(r)
	if w.cfg.Limits != nil && !hasClassSlot(r) {
		w.warnUnlimited(r)
	}
	log := w.log.With("queue", r.Queue, "class", r.Class, "job_id", r.ID)
	tc := traceOf(log, r)
	if tc.fields != nil {
		log = log.With(tc.fields...) // a second logger only for a traced job
	}
	outcome, observe := metrics.OutcomeFailed, w.cfg.Jobs.Start(r.Class)
	defer func() {
		observe(outcome)
		// History counts every run that failed, retried or not (a
		// retried run is processed but not failed in stat:failed).
		w.history.Job(r.Queue, r.Class, outcome != metrics.OutcomeOK, time.Since(start))
	}()

	if o := w.claimUnique(log, r); o != nil {
		w.cfg.Jobs.Failed(o.Exception)
		log.Warn("job not run", "outcome", o.Exception, "error", o.Error)
		return w.finish(r, *o)
	}

	w.cfg.SetTitle(fmt.Sprintf("Processing %s since %d [%s]", r.Queue, start.Unix(), r.Class))
	// A tracked job's status turned running in the reserve script.
	log.Info("job started")

	res, runErr := w.run(log, r, tc.env)
	dur := time.Since(start)
	if runErr == nil && !(res.Stopped && w.cancelRequest() != nil) {
		log.Info("job done", "outcome", "ok", "duration", dur)
		outcome = metrics.OutcomeOK
		w.keepOutput(log, r, res, nil, "ok", "")
		// The result goes into a tracked job's status with "complete".
		return w.finish(r, queue.Outcome{Result: res.Report.Result})
	}
	if c := w.cancelRequest(); c != nil {
		// Never retried: the operator asked for it to stop.
		o := cancelledOutcome(c, runErr, res)
		w.cfg.Jobs.Failed(o.Exception)
		w.keepOutput(log, r, res, runErr, o.Exception, o.Error)
		log.Warn("job cancelled", "outcome", o.Exception, "error", o.Error, "duration", dur)
		return w.finish(r, o)
	}
	o := Describe(runErr, res)
	o.At = time.Now()
	w.mu.Lock()
	why := w.killed
	w.mu.Unlock()
	if why != "" && (o.Exception == ExcDirtyExit || o.Exception == ExcHandlerFailed) {
		o.Error += " (" + why + ")"
	}
	w.cfg.Jobs.Failed(o.Exception) // cancels and limit kills, retried or not
	if w.retryLater(log, r, runErr, func() { w.keepOutput(log, r, res, runErr, "retried", o.Error) }) {
		outcome = metrics.OutcomeRetried
		return nil
	}
	if r.Attempt > 1 {
		o.Error += fmt.Sprintf(" (attempt %d)", r.Attempt)
	}
	w.keepOutput(log, r, res, runErr, o.Exception, o.Error)
	log.Warn("job failed", "outcome", o.Exception, "error", o.Error, "duration", dur)
	// The error goes into a tracked job's status with "failed".
	return w.finish(r, o)
}

// annotate adds d to the status of tracked job id; a failure only costs
// the detail, never the outcome.
func (w *Worker) annotate(log hclog.Logger, id string, d status.Detail) {
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.cfg.Status.Annotate(ctx, id, d); err != nil {
		log.Warn("record result detail in status", "error", err)
	}
}

// run starts the job's handler with env added to its environment and
// waits for it, keeping it reachable for Terminate, Force and KillJob
// meanwhile.
func (w *Worker) run(log hclog.Logger, r *queue.Reserved, env []string) (*runner.Result, error) {
	var onProgress func(runner.Progress)
	if r.ID != "" {
		rec := &progressRecorder{w: w, log: log, id: r.ID}
		onProgress = rec.report
		defer rec.flush() // the handler has exited: no more reports
	}
	// The running mark was sent with the reserve; its reply is read
	// here, before the handler starts, so the status says running
	// whenever the handler does. A failed one (a dropped connection)
	// costs only that: the job is held and runs, its outcome recorded.
	if err := w.fetch.ConfirmRunning(); err != nil {
		log.Warn("status not marked running", "error", err)
	}
	// The runner's view of the job: what the handler is given, and
	// what its class's config says (limits, timeout, env).
	job := runner.Job{
		Class:      r.Class,
		Queue:      r.Queue,
		ID:         r.ID,
		Worker:     r.Worker,
		Args:       r.Args,
		Attempt:    r.Attempt,
		Env:        env,
		Logger:     log.Named("handler"),
		OnProgress: onProgress,
	}
	if c, ok := w.cfg.Classes[r.Class]; ok {
		job.Limits, job.Timeout = c.Limits, c.Timeout
		if len(c.Env) > 0 {
			// The trace context comes last: of two entries, exec keeps the later.
			job.Env = append(slices.Clip(c.Env), env...)
		}
	}
	p, err := w.slot.Start(context.Background(), job)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.current = p
	pending, force := w.killed != "", w.force
	w.mu.Unlock()
	defer w.watchCancel(log, r)()
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
	p.w.annotate(p.log, p.id, status.Detail{Progress: &v, Message: r.Message})
}

func (p *progressRecorder) flush() {
	if p.pending != nil {
		p.last = time.Time{}
		p.report(*p.pending)
	}
}

// Describe turns a run error into the outcome a worker records: the
// failure record's exception, error and backtrace (the handler's stderr
// tail). A handler that exited nonzero on its own may have said better
// on its result descriptor. resqued try prints the same.
func Describe(err error, res *runner.Result) queue.Outcome {
	var ee *runner.ExitError
	var o queue.Outcome
	switch {
	case errors.As(err, &ee):
		switch {
		case ee.Limit != "":
			o.Exception = limitExceptions[ee.Limit]
		case ee.TimedOut:
			o.Exception = ExcTimeout
		case ee.Signal != 0:
			o.Exception = ExcDirtyExit
		default:
			o.Exception = ExcHandlerFailed
		}
		o.Error, o.Backtrace = ee.Error(), ee.StderrTail
		if d := res.Report.Failure; d != nil && o.Exception == ExcHandlerFailed && !ee.Stopped {
			if d.Exception != "" {
				o.Exception = d.Exception
			}
			if d.Error != "" {
				o.Error = d.Error
			}
			if d.Backtrace != nil {
				o.Backtrace = d.Backtrace
			}
		}
		return o
	case errors.Is(err, runner.ErrInvalidClass):
		o.Exception = ExcInvalidClass
	case errors.Is(err, runner.ErrNoHandler), errors.Is(err, runner.ErrAmbiguous), errors.Is(err, runner.ErrNotExecutable):
		o.Exception = ExcNoHandler
	default:
		o.Exception = ExcStartFailed
	}
	o.Error = err.Error()
	if res != nil {
		o.Backtrace = res.StderrTail
	}
	return o
}

// finish records the job's outcome and, in the same atomic step, its
// status with the outcome's detail (error or result). While the worker
// is to go on taking jobs, the same step reserves the next one
// (FinishAndReserve), which finish returns: one round trip per job.
// While Redis is away the outcome waits here, in memory, and the job
// stays in worker:<id>: if this process dies meanwhile, the job is
// recovered from there.
func (w *Worker) finish(r *queue.Reserved, o queue.Outcome) (next *queue.Reserved) {
	if o.Failed() && o.At.IsZero() {
		o.At = time.Now() // failed_at: when it failed, not when Redis came back
	}
	var recorded, taken bool
	var err error
	chained := false
	if s, _ := w.snapshot(); !s.quit && !s.paused && !w.paused {
		ctx := context.Background()
		queues, qerr := w.queues(ctx, false)
		opt, oerr := w.reserveOptions()
		if qerr == nil && oerr == nil {
			recorded, next, err = w.fetch.FinishAndReserve(ctx, r, o, queues, opt)
			switch {
			case err == nil:
				chained = true
				w.noteResumed(next)
			case errors.Is(err, queue.ErrNoJob), errors.Is(err, queue.ErrPausedAll):
				// Recorded; the loop's own reserve finds out the rest.
				chained, next, err = true, nil, nil
			case errors.Is(err, queue.ErrNotOwner):
				chained, taken, err = true, true, nil
			default:
				// Not known whether it happened: FinishJob is safe to
				// repeat, and a job the step took is resumed by the
				// next reserve.
				next = nil
				w.log.Debug("record outcome and reserve", "error", err)
			}
		}
	}
	if !chained {
		err = w.persist(context.Background(), "record job outcome", func(ctx context.Context) error {
			var err error
			recorded, err = w.cfg.Queue.FinishJob(ctx, r, o)
			if errors.Is(err, queue.ErrNotOwner) {
				taken, err = true, nil
			}
			return err
		})
	}
	switch {
	case taken:
		w.log.Error("job outcome not recorded: another process has taken over this worker's id and recovers its job, which will run again; stopping",
			"queue", r.Queue, "payload", string(r.Payload), "failure", o.String())
		w.Terminate()
		return next
	case err != nil:
		w.log.Error("job outcome not recorded: redis unreachable at shutdown; the job stays in worker:<id> for recovery",
			"queue", r.Queue, "payload", string(r.Payload), "failure", o.String(), "error", err)
		return next
	case !recorded:
		w.log.Warn("job outcome not recorded: the job was no longer in worker:<id> (recorded already, or recovered by a pruner)",
			"queue", r.Queue, "payload", string(r.Payload))
	default:
		w.forgetAttempts(r)
		w.releaseUnique(r)
	}
	return next
}

// persist runs f until it succeeds, backing off while Redis is away. It
// gives up only once the worker is terminating and f still fails, so a
// QUIT waits for Redis to record outcomes but a TERM does not hang.
func (w *Worker) persist(ctx context.Context, what string, f func(context.Context) error) error {
	return w.persistUntil(ctx, what, func(s state) bool { return s.term }, f)
}

// persistUntil is persist with its own condition for giving up.
func (w *Worker) persistUntil(ctx context.Context, what string, giveUp func(state) bool, f func(context.Context) error) error {
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
// keep, called once the retry is decided and before it is scheduled,
// stores the job's output.
func (w *Worker) retryLater(log hclog.Logger, r *queue.Reserved, runErr error, keep func()) bool {
	var ee *runner.ExitError
	if !errors.As(runErr, &ee) || ee.Stopped {
		return false
	}
	code := ee.Code
	if ee.Signal != 0 || ee.TimedOut || ee.Protocol != "" {
		code = -1
	}
	p := w.cfg.Retry.For(r.Class, r.Retry)
	if p.Builtin() && code == retry.TempFail && !r.HasAttempt && !r.RetryCounted {
		// restore leaves the built-in policy's attempt to now, so that
		// jobs that never ask for a retry cost no look-up; a retry
		// moved by a Ruby scheduler still counts on.
		w.restoreAttempt(r)
	}
	ok, after := p.Decide(r.Attempt, code)
	if !ok {
		return false
	}
	keep()
	at := time.Now().Add(after)
	var done, invalid bool
	err := w.persist(context.Background(), "schedule retry", func(ctx context.Context) error {
		var err error
		done, err = w.cfg.Queue.RetryJob(ctx, r, at)
		if errors.Is(err, queue.ErrInvalidPayload) {
			invalid, err = true, nil // not retryable: it fails instead
		}
		return err
	})
	if invalid {
		return false
	}
	if err != nil {
		// Redis away at a TERM: the job stays in worker:<id> for recovery.
		log.Error("retry not scheduled: redis unreachable; the job stays in worker:<id> for recovery", "error", err)
		return true
	}
	if done {
		log.Warn("job failed, will retry", "error", runErr, "attempt", r.Attempt, "next_attempt_at", at.UTC().Format(time.RFC3339))
	}
	return true
}

// restore gives the job back, in place, what a Ruby resque-scheduler
// drops when it moves a delayed job to its queue (only class, args and
// queue survive): the status token of a tracked job, and for a class
// that is retried the attempt, from resque-retry's counter. Best effort:
// on a Redis error the job runs as it came (untracked, attempt 1), as it
// did before.
func (w *Worker) restore(r *queue.Reserved) {
	p := w.cfg.Retry.For(r.Class, r.Retry)
	opt := queue.RestoreOptions{Attempt: !r.HasAttempt && p.Attempts > 1 && !p.Builtin()}
	if (r.ID != "" || !r.DelayedStatus) && !opt.Attempt {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opt.NoStatus = !r.DelayedStatus
	if err := w.cfg.Queue.Restore(ctx, r, opt); err != nil {
		w.log.Warn("restore what a ruby scheduler dropped", "queue", r.Queue, "class", r.Class, "error", err)
	}
}

// restoreAttempt is restore's attempt half alone, for a job under the
// built-in policy that asked for a retry (exit 75): its handler saw
// RESQUE_ATTEMPT 1 if a Ruby scheduler had dropped the attempt.
func (w *Worker) restoreAttempt(r *queue.Reserved) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.cfg.Queue.Restore(ctx, r, queue.RestoreOptions{Attempt: true, NoStatus: true}); err != nil {
		w.log.Warn("restore what a ruby scheduler dropped", "queue", r.Queue, "class", r.Class, "error", err)
	}
}

// forgetAttempts deletes the resque-retry counter of a job that ended for
// good, as resque-retry does after a success or a final failure. Only a
// retried job (or one whose counter Restore found) can have one.
func (w *Worker) forgetAttempts(r *queue.Reserved) {
	if r.Class == "" || (r.Attempt < 2 && !r.RetryCounted) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.cfg.Queue.ForgetAttempts(ctx, &r.Job); err != nil {
		w.log.Warn("delete resque-retry counter", "queue", r.Queue, "class", r.Class, "error", err)
	}
}

// freeSlot frees the concurrency slots r held (its class's, its
// queue's), together, once its outcome is recorded. A slot not freed
// (Redis away) lapses within the lease TTL.
func (w *Worker) freeSlot(r *queue.Reserved) {
	if len(r.Slots) == 0 || r.SlotsFreed() {
		return // none, or freed with the outcome (FinishAndReserve)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.cfg.Queue.ReleaseSlots(ctx, w.lease, r.Slots); err != nil {
		w.log.Warn("free concurrency slots; they lapse within the lease TTL", "limit", queue.SlotNames(r.Slots), "error", err)
	}
}

// hasClassSlot reports whether r holds a slot of its class's (or key's)
// limit, not only of its queue's.
func hasClassSlot(r *queue.Reserved) bool {
	for _, s := range r.Slots {
		if !s.Queue {
			return true
		}
	}
	return false
}

// warnUnlimited warns about a job of a class with a keyed limit whose
// args lack the key: it runs without that limit (docs/handlers.md).
func (w *Worker) warnUnlimited(r *queue.Reserved) {
	if _, _, missing := w.cfg.Limits.Names(r.Class, r.Args); missing != nil {
		w.log.Warn("job's args have nothing at its class's limit key; it runs without that limit",
			"queue", r.Queue, "class", r.Class, "key", missing.String(), "args", string(r.Args))
	}
}

package worker

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/pkg/queue"
)

// claimUnique takes or confirms the lock of a unique job (a payload with
// "unique": true or a TTL) before it runs, and returns nil when it may
// run. A job without "unique" costs nothing here. Otherwise it returns
// the outcome to record instead of running it: Resqued::DuplicateJob
// when another copy holds the lock (one enqueued by another tool, which
// could not refuse it), Resqued::InvalidPayload when "unique" is not
// true or a TTL of at least a second. A job without an id holds its
// lock under a token of this run.
func (w *Worker) claimUnique(log hclog.Logger, r *queue.Reserved) *queue.Outcome {
	w.unique = ""
	if r.Unique == nil {
		return nil
	}
	ttl, ok, err := queue.ParseUnique(r.Unique)
	if err != nil {
		return &queue.Outcome{Exception: ExcInvalidPayload, Error: err.Error()}
	}
	if !ok {
		return nil
	}
	holder := r.ID
	if holder == "" {
		holder = queue.NewID()
	}
	var answer error // the claim's answer, once Redis gave one
	err = w.persist(context.Background(), "claim unique lock", func(ctx context.Context) error {
		answer = w.cfg.Queue.ClaimUnique(ctx, &r.Job, holder, ttl)
		if errors.Is(answer, queue.ErrDuplicate) || errors.Is(answer, queue.ErrInvalidPayload) {
			return nil
		}
		return answer
	})
	if err == nil {
		err = answer
	}
	switch {
	case err == nil:
		w.unique = holder
		return nil
	case errors.Is(err, queue.ErrDuplicate):
		return &queue.Outcome{Exception: ExcDuplicateJob, Error: err.Error()}
	case errors.Is(err, queue.ErrInvalidPayload):
		return &queue.Outcome{Exception: ExcInvalidPayload, Error: err.Error()}
	}
	// Redis away at a TERM: the outcome will not be recorded either,
	// and the job stays in worker:<id> for recovery.
	log.Warn("job runs without its unique lock confirmed: redis unreachable", "error", err)
	return nil
}

// releaseUnique deletes the lock of a unique job whose end was recorded
// (success, failure, cancel, limit kill; not a retry, which keeps it until
// its last attempt ends), only while it is still the job's. Best effort:
// a lock left behind expires with its TTL.
func (w *Worker) releaseUnique(r *queue.Reserved) {
	holder := w.unique
	if holder == "" {
		return
	}
	w.unique = ""
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.cfg.Queue.ReleaseUnique(ctx, &r.Job, holder); err != nil {
		w.log.Warn("release unique lock; it expires with its TTL", "queue", r.Queue, "class", r.Class, "error", err)
	}
}

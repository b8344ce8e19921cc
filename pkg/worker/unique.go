package worker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/pkg/handlerconfig"
	"github.com/resqued/resqued/pkg/queue"
)

// claimUnique takes or confirms the lock of a unique job (a payload with
// "unique": true or a TTL, or a job of a class the handlers config makes
// unique) before it runs, and returns nil when it may run. A job of a
// class with neither costs one map lookup here. Otherwise it returns
// the outcome to record instead of running it: Resqued::DuplicateJob
// when another copy holds the lock (one enqueued by another tool, which
// could not refuse it), Resqued::InvalidPayload when "unique" is not
// true or a TTL of at least a second. A job without an id (a Ruby
// app's) holds its lock under this worker's name (queue.UniqueHolder).
func (w *Worker) claimUnique(log hclog.Logger, r *queue.Reserved) *queue.Outcome {
	w.unique = ""
	ttl, ok, err := uniqueTTL(w.cfg.Classes, r.Class, r.Unique)
	if err != nil {
		return &queue.Outcome{Exception: ExcInvalidPayload, Error: err.Error()}
	}
	if !ok {
		return nil
	}
	holder := queue.UniqueHolder(&r.Job, r.Worker)
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

// uniqueTTL is the TTL of job j's unique lock, and whether it has one:
// its payload's "unique" (true or a TTL) wins; absent, null or false,
// its class's in the handlers config (classes) applies. err: the
// payload's "unique" is neither. A job with no "unique" of a class the
// config does not make unique costs one map lookup.
func uniqueTTL(classes map[string]handlerconfig.Job, class string, payload json.RawMessage) (time.Duration, bool, error) {
	if payload != nil {
		if ttl, set, err := queue.ParseUnique(payload); set || err != nil {
			return ttl, set, err
		}
	}
	if c, ok := classes[class]; ok && c.Unique > 0 {
		return c.Unique, true, nil
	}
	return 0, false, nil
}

// holdsUnique says whether job j, as a dead worker left it, held a unique
// lock: its payload's "unique", or its class's in classes.
func holdsUnique(classes map[string]handlerconfig.Job, j *queue.Job) bool {
	_, ok, err := uniqueTTL(classes, j.Class, j.Unique)
	return ok && err == nil
}

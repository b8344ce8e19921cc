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
	ttl, ok := configUnique(w.cfg.Classes, r.Class, r.Unique)
	if r.Unique != nil && !ok {
		var err error
		if ttl, ok, err = queue.ParseUnique(r.Unique); err != nil {
			return &queue.Outcome{Exception: ExcInvalidPayload, Error: err.Error()}
		}
	}
	if !ok {
		return nil
	}
	holder := queue.UniqueHolder(&r.Job, r.Worker)
	var answer error // the claim's answer, once Redis gave one
	err := w.persist(context.Background(), "claim unique lock", func(ctx context.Context) error {
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

// configUnique is the TTL of the unique lock the handlers config
// (classes) gives class (ok true) when payload, a job's "unique" field,
// does not give one itself: the payload's own true or TTL wins; absent,
// null or false, the class's applies. A class the config does not make
// unique is one map lookup.
func configUnique(classes map[string]handlerconfig.Job, class string, payload json.RawMessage) (time.Duration, bool) {
	c, ok := classes[class]
	if !ok || c.Unique <= 0 {
		return 0, false
	}
	if payload != nil {
		if _, set, err := queue.ParseUnique(payload); set || err != nil {
			return 0, false // the payload's own, or its error
		}
	}
	return c.Unique, true
}

// holdsUnique says whether job j, as a dead worker left it, held a unique
// lock: its payload's "unique", or its class's in classes.
func holdsUnique(classes map[string]handlerconfig.Job, j *queue.Job) bool {
	if _, ok := configUnique(classes, j.Class, j.Unique); ok {
		return true
	}
	_, ok, _ := queue.ParseUnique(j.Unique)
	return ok
}

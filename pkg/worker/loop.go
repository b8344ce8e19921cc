package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/resqued/resqued/internal/snooze"
	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/queue"
)

// markPaused writes or clears the paused marker in worker:<id> when the
// paused state changed. It returns queue.ErrHoldsJob when worker:<id>
// holds a job (taken by a reserve whose reply was lost): the marker
// never replaces a job, which must run first.
func (w *Worker) markPaused(ctx context.Context, paused bool) error {
	if paused == w.paused {
		return nil
	}
	err := w.cfg.Queue.SetPaused(ctx, w.id, strings.Join(w.cfg.Queues, ","), paused, time.Now())
	if errors.Is(err, queue.ErrHoldsJob) {
		return err
	}
	if err != nil {
		w.log.Warn("mark paused", "error", err)
		return nil
	}
	w.paused = paused
	return nil
}

// loop takes and runs jobs until told to quit.
func (w *Worker) loop() error {
	fetch := w.fetch
	defer fetch.Close()
	backoff, waitBackoff := newBackoff(), newBackoff()
	// next is a job taken and not yet run: by the last outcome step
	// (FinishAndReserve) or by the loop's own reserve.
	var next *queue.Reserved
	for {
		s, wake := w.snapshot()
		if s.quit {
			if next != nil {
				w.release(next)
			}
			return nil
		}
		if next != nil {
			r := next
			next = nil
			if s.paused {
				// Taken just as we were told to pause (or, above, to
				// quit): give it back.
				w.release(r)
				continue
			}
			backoff.reset(w.log)
			next = w.process(r)
			continue
		}
		// waitCtx is cancelled by any state change, which unblocks a
		// wait for jobs at once.
		waitCtx, cancel := contextUntil(wake)
		// The pause-all-workers flag is checked inside the reserve
		// script (one round trip less per job); only while paused is it
		// read on its own, to notice it being lifted.
		var paused bool
		var err error
		var queues []string
		var r *queue.Reserved
		switch {
		case w.paused && !s.paused:
			paused, err = w.cfg.Queue.PausedAll(waitCtx)
		case !s.paused:
			if queues, err = w.queues(waitCtx, false); err == nil {
				r, err = w.reserve(waitCtx, fetch, queues)
			}
			if errors.Is(err, queue.ErrPausedAll) {
				paused, err = true, nil
			}
		}
		if err == nil && (paused || s.paused) {
			if w.cfg.Interval < 0 {
				// Draining (INTERVAL=0): a paused worker has nothing
				// left to do, as in Ruby Resque.
				cancel()
				return nil
			}
			w.cfg.SetTitle("Paused")
			w.history.SetState(history.Paused)
			if !w.paused {
				by := "USR2"
				if paused {
					by = "pause-all-workers flag"
				}
				w.log.Info("paused", "by", by)
			}
			if err := w.markPaused(waitCtx, true); errors.Is(err, queue.ErrHoldsJob) {
				// Taken before the pause (its reply was lost): it runs
				// first, as a running job does.
				cancel()
				if r, err := fetch.Reserve(context.Background(), nil, queue.ReserveOptions{HeldOnly: true}); err == nil {
					w.log.Warn("running the job this worker had taken before a connection was lost, before pausing", "queue", r.Queue)
					// Not taking more: no next job while pausing.
					next = w.process(r)
				}
				continue
			}
			snooze.For(waitCtx, max(w.cfg.Interval, 100*time.Millisecond))
			cancel()
			continue
		}
		if err == nil && w.paused {
			// Lifted: clear the marker before taking anything, since a
			// job would go into the same key.
			w.log.Info("resumed")
			w.history.SetState(history.Idle)
			_ = w.markPaused(waitCtx, false)
			cancel()
			continue
		}
		switch {
		case errors.Is(err, queue.ErrNoJob):
			backoff.reset(w.log)
			if w.cfg.Interval < 0 {
				cancel()
				return nil
			}
			w.cfg.SetTitle("Waiting for " + strings.Join(w.cfg.Queues, ","))
			for {
				// Idle: re-read the queue list now ("*" may have grown).
				if q, err := w.queues(waitCtx, true); err == nil {
					queues = q
				}
				w.log.Debug("waiting for a job", "queues", strings.Join(queues, ","), "timeout", w.cfg.Interval)
				if len(queues) == 0 {
					snooze.For(waitCtx, w.cfg.Interval)
					break
				}
				if err := fetch.Wait(waitCtx, queues, w.cfg.Interval); err != nil {
					// A wait cut short (UNBLOCKED when the primary is
					// demoted, a dropped connection) is looked into by
					// the next reserve; spacing the waits keeps a wait
					// that keeps failing from spinning.
					w.log.Debug("wait for jobs", "error", err)
					waitBackoff.wait(wake)
					break
				}
				waitBackoff.reset(w.log) // never failed: logs nothing
				// A wait that ran its course found every queue empty:
				// a reserve now would take nothing. It is sent only
				// once it is due for what else it does (see
				// idleCheckDue), and at once when a job arrives.
				if !fetch.WaitedOut() || waitCtx.Err() != nil || w.idleCheckDue() {
					break
				}
			}
			cancel()
			continue
		case errors.Is(err, queue.ErrNotOwner):
			cancel()
			w.log.Error("another process has taken over this worker's id; stopping without taking more jobs", "error", err)
			return err
		case err != nil:
			cancel()
			backoff.fail(w.log, err)
			backoff.wait(wake)
			continue
		}
		cancel()
		// Run it as a job the last outcome step took: the loop's top
		// looks at the state again and gives it back if told to stop.
		next = r
	}
}

// reserve takes the next job into worker:<id>, only of a class this
// worker has a handler for when OnlyKnownClasses is set.
func (w *Worker) reserve(ctx context.Context, fetch *queue.Fetcher, queues []string) (*queue.Reserved, error) {
	opt, err := w.reserveOptions()
	if err != nil {
		return nil, err
	}
	w.reservedAt = time.Now()
	r, err := fetch.Reserve(ctx, queues, opt)
	if err == nil {
		w.noteResumed(r)
	}
	return r, err
}

// idleCheckDue reports whether an idle worker whose wait found nothing
// is to send a reserve anyway, for what else the reserve script does: it
// notices the pause-all-workers flag (so that an idle worker shows it
// within two intervals) and extends the lease (due at half its TTL,
// before the worker's own renewal at three quarters). With the default
// 5 s INTERVAL that is every other wait: an idle worker sends a BLMOVE
// every 5 s and a reserve every 10 s.
func (w *Worker) idleCheckDue() bool {
	return time.Since(w.reservedAt) >= 2*w.cfg.Interval || time.Since(w.lease.Renewed()) >= w.cfg.LeaseTTL/2
}

// reserveOptions are the options of every reserve: with
// OnlyKnownClasses, the classes this worker has handlers for.
func (w *Worker) reserveOptions() (queue.ReserveOptions, error) {
	// A tracked job's running mark overlaps with the job's preparation;
	// run confirms it before the handler starts.
	opt := queue.ReserveOptions{DeferRunning: true, Limits: w.cfg.Limits}
	if w.cfg.OnlyKnownClasses {
		// Listing the handlers directory resolves every file in it: do it
		// at most once a second, not for every job. A handler added
		// meanwhile is taken up within that second.
		if w.classes == nil || time.Since(w.classesAt) >= time.Second {
			classes, err := w.cfg.Runner.Classes()
			if err != nil {
				return opt, fmt.Errorf("list handler classes: %w", err)
			}
			w.classes, w.classesAt = append([]string{}, classes...), time.Now()
		}
		opt.Classes = w.classes
	}
	return opt, nil
}

func (w *Worker) noteResumed(r *queue.Reserved) {
	if r.Resumed {
		w.log.Warn("resuming a job this worker had taken before a connection was lost", "queue", r.Queue)
	}
}

// queues expands the queue specification. With "*" or globs it reads the
// queues set, at most once a second while busy (a busy worker need not
// pay a round trip per job for it), and always when fresh is set.
func (w *Worker) queues(ctx context.Context, fresh bool) ([]string, error) {
	if w.expanded != nil && !fresh && time.Since(w.expandedAt) < time.Second {
		return w.expanded, nil
	}
	var all []string
	for _, s := range w.cfg.Queues {
		if queue.IsPattern(s) {
			var err error
			if all, err = w.cfg.Queue.Queues(ctx); err != nil {
				return nil, err
			}
			break
		}
	}
	w.expanded, w.expandedAt = queue.ExpandQueues(w.cfg.Queues, all), time.Now()
	return w.expanded, nil
}

// release puts a reserved job back at the head of its queue.
func (w *Worker) release(r *queue.Reserved) {
	err := w.persist(context.Background(), "give back job", func(ctx context.Context) error {
		return w.cfg.Queue.Release(ctx, r)
	})
	if err == nil {
		w.freeSlot(r)
	}
	if err != nil {
		// It stays in worker:<id>; the next start or prune of this id
		// applies the orphan policy to it.
		w.log.Error("could not give back a job; it stays in worker:<id> for recovery", "queue", r.Queue, "error", err)
	}
}

// contextUntil returns a context cancelled when ch is closed.
func contextUntil(ch <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

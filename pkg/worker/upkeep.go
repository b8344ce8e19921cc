package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/outage"
	"github.com/resqued/resqued/pkg/queue"
)

// What keeps a running worker known and its id its own: the lease on the
// id, the heartbeat, the re-prune once dead workers' leases expire, and
// the watch on a supervisor parent.

// acquireLease claims the worker id. A lease still held by another
// token is waited out for one lease time: a previous process with this
// id that just died leaves one behind. A lease renewed all that time
// belongs to a live process, and the worker refuses to start.
func (w *Worker) acquireLease(giveUp func(state) bool) error {
	var deadline time.Time
	for {
		var left time.Duration
		err := w.persistUntil(context.Background(), "claim worker id", giveUp, func(ctx context.Context) error {
			var err error
			left, err = w.lease.Acquire(ctx)
			if errors.Is(err, queue.ErrIDInUse) {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		if left == 0 {
			return nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(w.cfg.LeaseTTL + time.Second)
			w.log.Info("worker id held by another process; waiting to see whether it is alive", "lease_left", left)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("worker id %s is held by another live process: two workers share a hostname and pid "+
				"(containers with a fixed hostname, or host networking); give each one its own --hostname (RESQUED_HOSTNAME): %w", w.id, queue.ErrIDInUse)
		}
		s, wake := w.snapshot()
		if giveUp(s) {
			return fmt.Errorf("claim worker id %s: %w", w.id, queue.ErrIDInUse)
		}
		t := time.NewTimer(min(left+50*time.Millisecond, 500*time.Millisecond))
		select {
		case <-t.C:
		case <-wake:
		}
		t.Stop()
	}
}

// heartbeat stamps the heartbeat every HeartbeatInterval, keeps the
// lease renewed (on a goroutine of its own, so that a long
// prune never lets it lapse), and prunes dead workers at start and every
// PruneInterval, until ctx ends. A prune that found workers of this
// host dead but still holding a lease runs again once it has run out.
// While Redis is away it logs one line when the outage starts and one
// when it ends (internal/outage).
func (w *Worker) heartbeat(ctx context.Context) {
	var down outage.Log
	log := w.log.Named("heartbeat")
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	renewed := make(chan struct{})
	go func() { defer close(renewed); w.renewLease(ctx, log, &down) }()
	defer func() { <-renewed }()
	var prune <-chan time.Time
	if w.cfg.PruneInterval > 0 {
		pt := time.NewTicker(w.cfg.PruneInterval)
		defer pt.Stop()
		prune = pt.C
	}
	again := time.NewTimer(0) // the first prune, at start
	defer again.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := w.cfg.Queue.Heartbeat(ctx, w.id); ctx.Err() == nil {
				down.Report(log, wrap("heartbeat", err))
			}
		case <-prune:
			w.prune(ctx, again, log, &down)
		case <-again.C:
			w.prune(ctx, again, log, &down)
		}
	}
}

// renewLease keeps the lease alive until ctx ends, or until another
// process turns out to hold the id: then the worker stops. The reserve
// and outcome scripts extend the lease as they check it, so a worker
// that takes jobs, or waits for them (idleCheckDue), renews nothing
// here; this renews it once three quarters of its TTL passed without,
// during a long job or a long INTERVAL. Looking costs no command.
func (w *Worker) renewLease(ctx context.Context, log hclog.Logger, down *outage.Log) {
	t := time.NewTicker(min(w.cfg.LeaseTTL/6, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(w.lease.Renewed()) < w.cfg.LeaseTTL*3/4 {
			continue
		}
		err := w.lease.Renew(ctx)
		if errors.Is(err, queue.ErrNotOwner) {
			w.log.Error("another process has taken over this worker's id (this one lost its lease, e.g. while Redis was away or the process was stopped); stopping", "error", err)
			w.Terminate()
			return
		}
		if ctx.Err() == nil {
			down.Report(log, wrap("renew worker lease", err))
		}
	}
}

// prune prunes dead workers, reporting the outcome to down; again is
// reset to when the next prune is due if some dead-looking workers still
// held a lease.
func (w *Worker) prune(ctx context.Context, again *time.Timer, log hclog.Logger, down *outage.Log) {
	pruned, after, err := w.pruner.Prune(ctx)
	if ctx.Err() == nil {
		down.Report(log, wrap("prune dead workers", err))
	}
	if len(pruned) > 0 {
		w.log.Info("pruned dead workers", "count", len(pruned))
	}
	if after > 0 {
		again.Reset(after + 100*time.Millisecond)
	}
}

// watchParent shuts the worker down once its parent has gone: the
// process is then re-parented and Getppid changes.
func (w *Worker) watchParent(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if os.Getppid() != w.cfg.ParentPID {
				w.log.Warn("supervisor is gone: finishing the running job, then exiting", "supervisor_pid", w.cfg.ParentPID)
				w.Shutdown()
				return
			}
		}
	}
}

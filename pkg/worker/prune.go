package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/procs"
	"github.com/resqued/resqued/pkg/queue"
)

// ExcPrunedDirtyExit is Ruby Resque's exception for the job of a worker
// that was found dead.
const ExcPrunedDirtyExit = "Resque::PruneDeadWorkerDirtyExit"

// Pruner unregisters dead workers the way Ruby Resque 2.x does, so that
// both agree and a kill -9 never leaves a ghost worker behind.
type Pruner struct {
	// Queue is required.
	Queue *queue.Client
	// Self is the id of the worker that prunes (it holds the lock).
	Self string
	// Hostname is this host's name; only its workers are checked for a
	// live pid.
	Hostname string
	// Queues is the pruning worker's queue specification: workers of
	// this host are only checked if they listen on the same queues, or
	// if Queues contains "*".
	Queues []string
	// Expiry is how old a heartbeat must be for its worker to count as
	// dead on any host. Zero means 5 minutes, Ruby's prune_interval.
	Expiry time.Duration
	// OnOrphan is what happens to a dead worker's in-flight job:
	// "requeue" (the default) puts it back at the head of its queue,
	// "fail" records it as failed, as Ruby Resque does.
	OnOrphan string
	// Alive lists the live worker pids of this host. Nil means procs.WorkerPIDs.
	Alive  func() (map[int]bool, error)
	Logger hclog.Logger
}

// Prune takes the pruning lock and, if it got it, unregisters every dead
// worker, recording each one's in-flight job as failed. It returns the
// ids it pruned.
func (p *Pruner) Prune(ctx context.Context) ([]string, error) {
	ok, err := p.Queue.TryPruneLock(ctx, p.Self, 60*time.Second)
	if err != nil || !ok {
		return nil, err
	}
	defer func() {
		// Unreleased, the lock still expires after 60 s.
		if err := p.Queue.ReleasePruneLock(context.WithoutCancel(ctx), p.Self); err != nil && p.Logger != nil {
			p.Logger.Debug("release prune lock", "error", err)
		}
	}()
	ids, err := p.Queue.Workers(ctx)
	if err != nil {
		return nil, err
	}
	beats, err := p.Queue.Heartbeats(ctx)
	if err != nil {
		return nil, err
	}
	now, err := p.Queue.ServerTime(ctx)
	if err != nil {
		return nil, err
	}
	expiry := p.Expiry
	if expiry == 0 {
		expiry = 5 * time.Minute
	}
	alive := p.Alive
	if alive == nil {
		alive = procs.WorkerPIDs
	}
	var live map[int]bool
	var pruned []string
	for _, id := range ids {
		if id == p.Self {
			continue
		}
		beat, hasBeat := beats[id]
		expired := hasBeat && now.Sub(beat) > expiry
		dead := expired
		if !dead {
			host, pid, queues, err := queue.ParseWorkerID(id)
			if err != nil || host != p.Hostname || !p.sameQueues(queues) {
				continue
			}
			if live == nil {
				if live, err = alive(); err != nil {
					return pruned, fmt.Errorf("list live workers: %w", err)
				}
			}
			dead = !live[pid]
		}
		if !dead {
			continue
		}
		done, err := p.PruneOne(ctx, id, expired)
		if err != nil {
			return pruned, err
		}
		if done {
			pruned = append(pruned, id)
		}
	}
	return pruned, nil
}

func (p *Pruner) sameQueues(theirs []string) bool {
	set := map[string]bool{}
	for _, q := range p.Queues {
		if q == "*" {
			return true
		}
		set[q] = true
	}
	other := map[string]bool{}
	for _, q := range theirs {
		other[q] = true
	}
	if len(set) != len(other) {
		return false
	}
	for q := range other {
		if !set[q] {
			return false
		}
	}
	return true
}

// PruneOne unregisters worker id, known to be dead. Its in-flight job, if
// any, goes back to the head of its queue, or with OnOrphan "fail" is
// recorded as failed the way Ruby Resque does: for a worker whose
// heartbeat expired, Resque::PruneDeadWorkerDirtyExit; for one found dead
// on this host, Resque::DirtyExit "Job still being processed". It reports
// whether it did anything: false when the worker was already gone, or
// another pruner got there first.
func (p *Pruner) PruneOne(ctx context.Context, id string, expired bool) (bool, error) {
	raw, err := p.Queue.InFlight(ctx, id)
	if err != nil {
		return false, err
	}
	var o *queue.Orphan
	outcome := "no job"
	if raw != nil {
		o = &queue.Orphan{Record: raw}
		w, err := queue.ParseWorking(raw)
		switch {
		case err == nil && w.Paused:
		case err == nil && p.OnOrphan != "fail" && len(w.Payload) > 0 && w.Payload[0] == '{':
			o.Queue, o.Payload = w.Queue, w.Payload
			outcome = "job requeued"
		default:
			payload, q := []byte(raw), ""
			if err == nil {
				payload, q = w.Payload, w.Queue
			}
			exc, msg := ExcDirtyExit, "Job still being processed"
			if expired {
				class := "<Unknown Job>"
				if j, err := queue.Decode(q, payload); err == nil {
					class = j.Class
				}
				exc = ExcPrunedDirtyExit
				msg = fmt.Sprintf("Worker %s did not gracefully exit while processing %s", id, class)
			}
			o.Failure = queue.NewFailure(time.Now(), payload, exc, msg, nil, id, q)
			outcome = "job failed"
		}
	}
	done, err := p.Queue.UnregisterDead(ctx, id, o)
	if err != nil || !done {
		return false, err
	}
	if p.Logger != nil {
		p.Logger.Warn("pruned dead worker", "dead_worker", id, "outcome", outcome)
	}
	return true, nil
}

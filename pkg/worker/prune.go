package worker

import (
	"context"
	"encoding/json"
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
		dead := hasBeat && now.Sub(beat) > expiry
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
		if err := p.PruneOne(ctx, id); err != nil {
			return pruned, err
		}
		pruned = append(pruned, id)
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

// PruneOne unregisters worker id, known to be dead, and fails its
// in-flight job (if it was running one) as Resque::PruneDeadWorkerDirtyExit.
func (p *Pruner) PruneOne(ctx context.Context, id string) error {
	raw, err := p.Queue.InFlight(ctx, id)
	if err != nil {
		return err
	}
	var f *queue.Failure
	var w struct {
		Queue   string          `json:"queue"`
		Payload json.RawMessage `json:"payload"`
		Paused  bool            `json:"paused"`
	}
	if raw != nil {
		if json.Unmarshal(raw, &w) != nil {
			w.Payload = raw // not Resque's format: keep it whole
		}
		if !w.Paused {
			class := "an unknown job"
			if j, err := queue.Decode(w.Queue, w.Payload); err == nil {
				class = j.Class
			}
			hostPID := id
			if host, pid, _, err := queue.ParseWorkerID(id); err == nil {
				hostPID = fmt.Sprintf("%s:%d", host, pid)
			}
			f = queue.NewFailure(time.Now(), w.Payload, ExcPrunedDirtyExit,
				fmt.Sprintf("Worker %s did not gracefully exit while processing %s", hostPID, class),
				nil, id, w.Queue)
		}
	}
	if err := p.Queue.UnregisterDead(ctx, id, f); err != nil {
		return err
	}
	if p.Logger != nil {
		p.Logger.Warn("pruned dead worker", "dead_worker", id, "failed_job", f != nil)
	}
	return nil
}

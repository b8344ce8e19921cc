package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/procs"
	"github.com/resqued/resqued/internal/snooze"
	"github.com/resqued/resqued/pkg/handlerconfig"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
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
	Alive func() (map[int]bool, error)
	// MaxRedeliveries is how often one job may be requeued from dead
	// workers before it fails as Resque::DirtyExit. Zero means 3;
	// negative means no limit.
	MaxRedeliveries int
	// LeaseRecheck is how long Prune waits before it prunes a worker
	// found dead by its pid with no lease (see Prune). Zero means 3s.
	LeaseRecheck time.Duration
	// Classes is the handlers config's settings by class (Config.Classes):
	// a failed orphan of a class it makes unique has its lock released,
	// as one whose payload says "unique".
	Classes map[string]handlerconfig.Job
	Logger  hclog.Logger
}

// LeaseGrace is how long a pruner waits, after it found a worker of this
// host dead by its pid but with no lease, before it looks again and
// prunes: long enough for a live resqued worker whose lease lapsed in a
// Redis outage (or that runs in another PID namespace) to renew it.
func (p *Pruner) leaseGrace() time.Duration {
	if p.LeaseRecheck > 0 {
		return p.LeaseRecheck
	}
	return 3 * time.Second
}

// Prune takes the pruning lock and, if it got it, unregisters every dead
// worker, dealing with each one's in-flight job as OnOrphan says. It
// returns the ids it pruned and, when some dead-looking workers of this
// host still held a live lease (just killed, or alive in another PID
// namespace), how long until the last of those leases runs out: the
// caller prunes again then.
func (p *Pruner) Prune(ctx context.Context) (pruned []string, again time.Duration, err error) {
	ok, wait, err := p.lock(ctx)
	if err != nil || !ok {
		return nil, wait, err
	}
	defer func() {
		// Unreleased, the lock still expires after 60 s.
		if err := p.Queue.ReleasePruneLock(context.WithoutCancel(ctx), p.Self); err != nil && p.Logger != nil {
			p.Logger.Debug("release prune lock", "error", err)
		}
	}()
	ids, err := p.Queue.Workers(ctx)
	if err != nil {
		return nil, 0, err
	}
	beats, err := p.Queue.Heartbeats(ctx)
	if err != nil {
		return nil, 0, err
	}
	now, err := p.Queue.ServerTime(ctx)
	if err != nil {
		return nil, 0, err
	}
	expiry := p.Expiry
	if expiry == 0 {
		expiry = 5 * time.Minute
	}
	var live map[int]bool
	type candidate struct {
		id      string
		expired bool
	}
	var dead []candidate
	for _, id := range ids {
		if id == p.Self {
			continue
		}
		beat, hasBeat := beats[id]
		expired := hasBeat && now.Sub(beat) > expiry
		if !expired {
			host, pid, queues, err := queue.ParseWorkerID(id)
			if err != nil || host != p.Hostname || !p.sameQueues(queues) {
				continue
			}
			if live == nil {
				if live, err = p.alive(); err != nil {
					return pruned, 0, fmt.Errorf("list live workers: %w", err)
				}
			}
			if live[pid] {
				continue
			}
		}
		dead = append(dead, candidate{id, expired})
	}
	// A live lease outranks a pid check: the worker may be alive in
	// another PID namespace, or be one just killed whose lease has not
	// run out yet (then it is pruned on the next pass). A worker with no
	// lease is looked at twice, LeaseGrace apart, so that one whose lease
	// lapsed only because Redis was away has time to renew it.
	var recheck []candidate
	for pass := 0; pass < 2 && len(dead) > 0; pass++ {
		if pass == 1 {
			if snooze.For(ctx, p.leaseGrace()); ctx.Err() != nil {
				return pruned, again, ctx.Err()
			}
		}
		recheck = recheck[:0]
		for _, c := range dead {
			held, left, err := p.Queue.LeaseHeld(ctx, c.id)
			if err != nil {
				return pruned, again, err
			}
			if held {
				again = max(again, left)
				continue
			}
			if pass == 0 && !c.expired {
				recheck = append(recheck, c)
				continue
			}
			done, err := p.PruneOne(ctx, c.id, c.expired, "")
			if err != nil {
				return pruned, again, err
			}
			if done {
				pruned = append(pruned, c.id)
			}
		}
		dead = append([]candidate(nil), recheck...)
	}
	return pruned, again, nil
}

// lock takes the pruning lock, taking it over from a holder of this host
// whose process is gone (a pruner killed mid-prune would otherwise block
// every prune for the lock's 60 s). When the dead holder's lease has not
// run out yet, it returns how long until it does: prune again then.
func (p *Pruner) lock(ctx context.Context) (bool, time.Duration, error) {
	ok, holder, err := p.Queue.TryPruneLock(ctx, p.Self, 60*time.Second)
	if err != nil || ok {
		return ok, 0, err
	}
	// Alive means what it means to the pid check of pruning: a process
	// titled as a Resque worker (a zombie left by a killed supervisor,
	// which no init reaped, is not).
	host, pid, _, err := queue.ParseWorkerID(holder)
	if err != nil || host != p.Hostname || pid <= 0 {
		return false, 0, nil
	}
	if live, err := p.alive(); err != nil || live[pid] {
		return false, 0, err
	}
	if held, left, err := p.Queue.LeaseHeld(ctx, holder); err != nil || held {
		return false, left, err
	}
	if p.Logger != nil {
		p.Logger.Info("taking over the prune lock from a dead pruner", "holder", holder)
	}
	ok, err = p.Queue.TakeOverPruneLock(ctx, holder, p.Self, 60*time.Second)
	return ok, 0, err
}

func (p *Pruner) alive() (map[int]bool, error) {
	if p.Alive != nil {
		return p.Alive()
	}
	return procs.WorkerPIDs()
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

// PruneOne unregisters worker id, known to be dead, acting under lease
// token (the dead worker's own, or "" to act only while nobody holds its
// lease). Its in-flight job, if any, goes back to the head of its queue,
// or with OnOrphan "fail" is recorded as failed the way Ruby Resque does:
// for a worker whose heartbeat expired, Resque::PruneDeadWorkerDirtyExit;
// for one found dead on this host, Resque::DirtyExit "Job still being
// processed". A job requeued more than MaxRedeliveries times fails as
// Resque::DirtyExit instead: it keeps killing its workers. On this host,
// the dead worker's handler processes still running are killed first.
// It reports whether it did anything: false when the worker was already
// gone, or another pruner got there first.
func (p *Pruner) PruneOne(ctx context.Context, id string, expired bool, token string) (bool, error) {
	if cur, err := p.Queue.LeaseToken(ctx, id); err != nil || (cur != "" && cur != token) {
		// Alive after all, elsewhere (or unknown): not ours to prune.
		return false, err
	}
	if host, _, _, err := queue.ParseWorkerID(id); err == nil && host == p.Hostname {
		if n, err := runner.KillStray(id); err == nil && n > 0 && p.Logger != nil {
			p.Logger.Warn("killed the handler processes a dead worker left running", "dead_worker", id, "processes", n)
		}
	}
	raw, err := p.Queue.InFlight(ctx, id)
	if err != nil {
		return false, err
	}
	var o *queue.Orphan
	outcome := "no job"
	if raw != nil {
		w, err := queue.ParseWorking(raw)
		payload, q := []byte(raw), ""
		if err == nil {
			payload, q = w.Payload, w.Queue
		}
		o = &queue.Orphan{Record: raw, Queue: q, Payload: payload, StatusID: queue.StatusID(payload)}
		orig := payload
		if err == nil {
			if b, oerr := w.Original(); oerr == nil {
				orig = b
			}
		}
		class := "<Unknown Job>"
		j, derr := queue.Decode(q, orig)
		if derr == nil {
			class = j.Class
			if holdsUnique(p.Classes, j) {
				o.Unique = j
			}
		}
		switch {
		case err == nil && w.Paused:
		case err == nil && p.OnOrphan != "fail" && len(w.Payload) > 0 && w.Payload[0] == '{':
			o.Requeue = true
			o.MaxRedeliveries = p.maxRedeliveries()
			if o.MaxRedeliveries >= 0 {
				o.Poison = &queue.Outcome{Exception: ExcDirtyExit, Error: fmt.Sprintf(
					"Job of class %s was still running when its worker died %d times (redelivered %d times; --max-redeliveries %d): it may be killing its workers",
					class, o.MaxRedeliveries+1, o.MaxRedeliveries, o.MaxRedeliveries)}
			}
			outcome = "job requeued"
		case err == nil && p.OnOrphan != "fail" && derr != nil:
			// Not a job any worker can run (not a JSON object): it fails
			// as it would have had its worker lived, with its bytes.
			o.Payload = orig
			o.Fail = &queue.Outcome{Exception: ExcInvalidPayload, Error: derr.Error()}
			outcome = "job failed: invalid payload"
		default:
			fail := &queue.Outcome{Exception: ExcDirtyExit, Error: "Job still being processed"}
			if expired {
				fail = &queue.Outcome{Exception: ExcPrunedDirtyExit, Error: fmt.Sprintf("Worker %s did not gracefully exit while processing %s", id, class)}
			}
			o.Fail = fail
			outcome = "job failed"
		}
	}
	done, err := p.Queue.UnregisterDead(ctx, id, token, o)
	if errors.Is(err, queue.ErrIDInUse) {
		// Alive after all, elsewhere: not ours to prune.
		return false, nil
	}
	if err != nil || done == queue.NotUnregistered {
		return false, err
	}
	if done == queue.UnregisteredPoison {
		outcome = "job failed: redelivered too often"
	}
	if p.Logger != nil {
		p.Logger.Warn("pruned dead worker", "dead_worker", id, "outcome", outcome)
	}
	return true, nil
}

func (p *Pruner) maxRedeliveries() int {
	if p.MaxRedeliveries == 0 {
		return 3
	}
	return max(p.MaxRedeliveries, -1)
}

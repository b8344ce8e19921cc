package delayed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/outage"
	"github.com/resqued/resqued/pkg/queue"
)

// Interval is how often Run looks for due jobs.
const Interval = 250 * time.Millisecond

// batchSize bounds the items one script call moves, so a huge timestamp
// does not block Redis for long; MoveDue calls it again until done.
const batchSize = 500

// timestampsPerPass bounds the due timestamps MoveDue reads at a time.
const timestampsPerPass = 100

// Scheduler moves delayed jobs onto their queues when due. The reads and
// writes are pkg/queue's (Client.DueTimestamps, Client.MoveDelayed);
// Scheduler decides when, how much at a time, and what to log.
type Scheduler struct {
	q   *queue.Client
	log hclog.Logger
}

// New returns a Scheduler for q's namespace. A nil logger logs nothing.
func New(q *queue.Client, logger hclog.Logger) *Scheduler {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Scheduler{q: q, log: logger}
}

// MoveDue moves every delayed item due at or before now onto its queue
// (SADD queues, RPUSH queue:<q>) and returns how many it moved. Each
// item moves in one compare-and-set Lua script, so schedulers running at
// once never move an item twice. Items that name no usable queue stay where they are.
func (s *Scheduler) MoveDue(ctx context.Context, now time.Time) (int, error) {
	total := 0
	stuck := map[string]bool{} // timestamps holding only unmovable items
	for ctx.Err() == nil {
		tss, err := s.q.DueTimestamps(ctx, now, len(stuck), timestampsPerPass)
		if err != nil {
			return total, fmt.Errorf("move delayed jobs: %w", err)
		}
		if len(tss) == 0 {
			return total, nil
		}
		for _, t := range tss {
			if stuck[t] {
				continue
			}
			for {
				b, err := s.q.MoveDelayed(ctx, t, batchSize)
				if errors.Is(err, queue.ErrNotTimestamp) {
					// Not resque-scheduler's; skip it rather than loop.
					stuck[t] = true
					break
				}
				total += b.Moved
				if err != nil {
					return total, err
				}
				if b.Left == 0 {
					break
				}
				if b.Moved == 0 && b.Kept == 0 {
					continue // another scheduler took this batch first
				}
				if b.Moved == 0 {
					stuck[t] = true
					s.log.Warn("delayed items name no queue; left in place", "key", b.Key, "count", b.Kept)
					break
				}
			}
		}
		if len(tss) < timestampsPerPass {
			return total, nil
		}
	}
	return total, ctx.Err()
}

// Run calls MoveDue every Interval until ctx is done, so a due job waits
// at most about Interval plus the second resque-scheduler's timestamps
// are rounded to. While Redis fails it backs off (100ms doubling to 1s)
// and logs one line when the outage starts and one when it ends
// (internal/outage), however many attempts it makes in between.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(Interval)
	defer t.Stop()
	backoff := outage.NewBackoff()
	for {
		n, err := s.MoveDue(ctx, time.Now())
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			backoff.Fail(s.log, err)
			backoff.Wait(ctx.Done())
			continue
		}
		backoff.Reset(s.log)
		if n > 0 {
			s.log.Info("moved delayed jobs", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

package delayed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/outage"
	"github.com/resqued/resqued/internal/snooze"
	"github.com/resqued/resqued/pkg/queue"
)

// MaxIdle is how long Run sleeps at most between passes when nothing is
// due sooner: resque-scheduler's own default poll interval
// (poll_sleep_amount, 5 s, lib/resque/scheduler/configuration.rb). Items
// resqued adds (Delay, RetryJob) wake Run at once when due first; items
// other tools add are moved within MaxIdle of being due.
const MaxIdle = 5 * time.Second

// MinInterval is the least time between two passes, however often
// resqued's own writes wake the loop: it never polls more often than the
// fixed 250 ms poll it replaces.
const MinInterval = 250 * time.Millisecond

// batchSize bounds the items one script call moves, so a huge timestamp
// does not block Redis for long; MoveDue calls it again until done.
const batchSize = 500

// timestampsPerPass bounds the due timestamps MoveDue reads at a time.
const timestampsPerPass = 100

// Scheduler moves delayed jobs onto their queues when due. The reads and
// writes are pkg/queue's (Client.ScheduleHead, Client.MoveDelayed,
// Client.Waker);
// Scheduler decides when, how much at a time, and what to log.
type Scheduler struct {
	q   *queue.Client
	log hclog.Logger

	// MaxIdle is how long Run sleeps at most when nothing is due sooner
	// (zero: the package's MaxIdle): how late an item written
	// without a wake token (by Ruby resque-scheduler, say) may be moved.
	MaxIdle time.Duration
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
	n, _, err := s.moveDue(ctx, now)
	return n, err
}

// moveDue is MoveDue that also returns when the first item not yet due
// is (zero: none), from the same reads (queue.Client.ScheduleHead).
func (s *Scheduler) moveDue(ctx context.Context, now time.Time) (int, time.Time, error) {
	total := 0
	stuck := map[string]bool{} // timestamps holding only unmovable items
	for ctx.Err() == nil {
		tss, next, err := s.q.ScheduleHead(ctx, now, len(stuck), timestampsPerPass)
		if err != nil {
			return total, time.Time{}, fmt.Errorf("move delayed jobs: %w", err)
		}
		if len(tss) == 0 {
			return total, next, nil
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
					return total, time.Time{}, err
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
			return total, next, nil
		}
	}
	return total, time.Time{}, ctx.Err()
}

// Run moves due jobs (MoveDue) until ctx is done. After each pass it
// sleeps until the first item not yet due, or MaxIdle when that is later
// or there is none; the sleep is a BLPOP on the wake list
// (queue.Waker), so an item resqued itself delays or retries that is due
// first ends it at once, and an idle Run costs Redis two commands per
// MaxIdle (the pass's read and the BLPOP). Passes are at least
// MinInterval apart. Items written by other tools, which push no wake
// token, move within MaxIdle of being due, as with resque-scheduler. Of
// several daemons on one Redis one takes each token; the others move
// the item within MaxIdle if it is still there (moving is
// compare-and-set). While Redis fails Run backs off (100ms doubling to
// 1s) and logs one line when the outage starts and one when it ends
// (internal/outage), however many attempts it makes in between.
func (s *Scheduler) Run(ctx context.Context) {
	w := s.q.Waker()
	defer w.Close()
	backoff := outage.NewBackoff()
	waitFailed := false // the outage is the wait's: a pass alone does not end it
	var last time.Time
	for {
		snooze.For(ctx, time.Until(last.Add(MinInterval)))
		if ctx.Err() != nil {
			return
		}
		last = time.Now()
		n, next, err := s.moveDue(ctx, last)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			backoff.Fail(s.log, err)
			backoff.Wait(ctx.Done())
			continue
		}
		if !waitFailed {
			backoff.Reset(s.log)
		}
		if n > 0 {
			s.log.Info("moved delayed jobs", "count", n)
		}
		wait := s.MaxIdle
		if wait <= 0 {
			wait = MaxIdle
		}
		if !next.IsZero() {
			wait = min(wait, time.Until(next))
		}
		if wait <= 0 {
			continue // came due during the pass
		}
		if _, err := w.Wait(ctx, wait); err != nil {
			if ctx.Err() != nil {
				return
			}
			waitFailed = true
			backoff.Fail(s.log, err)
			backoff.Wait(ctx.Done())
			continue
		}
		if waitFailed {
			waitFailed = false
			backoff.Reset(s.log)
		}
	}
}

package recurring

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/outage"
	"github.com/resqued/resqued/internal/snooze"
	"github.com/resqued/resqued/pkg/queue"
)

// lockTTL is how long a tick's lock outlives the tick: long enough that a
// daemon whose clock is behind by up to this much still finds it taken.
const lockTTL = time.Hour

// maxWait caps one timer, so a wall-clock jump delays a tick by at most
// this much before the loop notices.
const maxWait = time.Minute

// attempts is how often a tick's claim or push is tried when Redis fails,
// backoffDelay apart.
const (
	attempts     = 3
	backoffDelay = time.Second
)

// Run enqueues each entry's job at each of its ticks until ctx is done.
// At a tick, every daemon running the same schedule on the same Redis and
// namespace takes the tick's lock (queue.Client.ClaimTick: SET
// ScheduleLockKey(ns, name, tick) <host:pid:run> NX EX 3600, or the
// entry's interval if longer); only the winner pushes the
// job, so each tick is enqueued once in all. A winner that dies or loses
// Redis between the SET and the push loses that tick: the other daemons
// have already given it up and nobody retries it. Conversely, a push whose
// transaction commits but whose reply is lost is retried and may enqueue
// the tick twice.
//
// Ticks are computed from the wall clock and fired at most about a second
// late; ticks missed while no daemon ran (or while this one was suspended)
// are skipped, not replayed. An "every" entry with first_in makes one run
// first_in after Run starts, which counts as the current interval's tick:
// it is skipped if any daemon already enqueued that interval, so daemons
// that restart do not each add a run.
//
// While Redis is away the ticks that fall due are lost, and the log says
// so once: one line when the outage starts and one when it ends
// (internal/outage), for all entries together; the lost ticks are logged
// at Debug.
//
// Entries whose rails_env excludes this process are not run.
func (s *Schedule) Run(ctx context.Context, client *queue.Client, logger hclog.Logger) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	token := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(rnd[:]))
	var down outage.Log // shared by the entries: one schedule, one outage
	var wg sync.WaitGroup
	for _, e := range s.Entries {
		if e.Skip {
			logger.Info("schedule entry skipped: rails_env does not match", "entry", e.Name, "rails_env", e.RailsEnv)
			continue
		}
		wg.Add(1)
		go func(e *Entry) {
			defer wg.Done()
			r := &entryRunner{e: e, c: client, log: logger.With("entry", e.Name), token: token, hook: s.onFire, down: &down}
			r.loop(ctx)
		}(e)
	}
	wg.Wait()
	<-ctx.Done() // even with nothing to run, Run lasts as long as ctx
}

type entryRunner struct {
	e     *Entry
	c     *queue.Client
	log   hclog.Logger
	token string
	hook  func(e *Entry, tick time.Time, pushed bool)
	down  *outage.Log
}

func (r *entryRunner) loop(ctx context.Context) {
	now := time.Now()
	if r.e.FirstIn > 0 {
		at := now.Add(r.e.FirstIn)
		if !sleepUntil(ctx, at) {
			return
		}
		iv := int64(r.e.Every / time.Second)
		r.fire(ctx, time.Unix(floorDiv(at.Unix(), iv)*iv, 0), "first_in")
		now = at
	}
	next := r.e.Next(now)
	r.log.Debug("schedule entry started", "next", next)
	for {
		if !sleepUntil(ctx, next) {
			return
		}
		r.fire(ctx, next, "tick")
		now := time.Now()
		if after := r.e.Next(next); now.Sub(after) >= time.Second && !r.down.Down() {
			r.log.Warn("schedule ticks skipped: this daemon was late", "late", now.Sub(next).Round(time.Millisecond))
		}
		if now.Before(next) {
			now = next
		}
		next = r.e.Next(now)
	}
}

// sleepUntil waits for the wall clock to reach t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	for {
		d := time.Until(t)
		if d <= 0 {
			return ctx.Err() == nil
		}
		if d > maxWait {
			d = maxWait
		}
		if snooze.For(ctx, d); ctx.Err() != nil {
			return false
		}
	}
}

func (r *entryRunner) ttl() time.Duration {
	ttl := lockTTL
	if r.e.Every > ttl {
		ttl = r.e.Every
	}
	return ttl
}

// fire claims tick and, if this daemon wins, enqueues the entry's job.
func (r *entryRunner) fire(ctx context.Context, tick time.Time, why string) {
	won, err := withBackoff(ctx, func() (bool, error) { return r.c.ClaimTick(ctx, r.e.Name, tick, r.token, r.ttl()) })
	if err != nil {
		if ctx.Err() == nil {
			r.down.Fail(r.log, err)
			r.log.Debug("schedule tick lost: cannot take its lock", "tick", tick, "error", err)
		}
		return
	}
	r.down.OK(r.log)
	if !won {
		r.log.Trace("schedule tick taken by another daemon", "tick", tick)
		if r.hook != nil {
			r.hook(r.e, tick, false)
		}
		return
	}
	id := queue.NewID()
	payload, err := queue.Encode(r.e.Class, r.e.Args, id)
	if err != nil {
		r.log.Error("schedule tick lost: cannot encode job", "tick", tick, "error", err)
		return
	}
	// The lock is ours: push even if ctx ends now, or the tick is lost.
	pushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err = withBackoff(pushCtx, func() (bool, error) {
		err := r.c.Enqueue(pushCtx, r.e.Queue, payload, queue.EnqueueOptions{})
		if errors.Is(err, queue.ErrNotAcknowledged) {
			// Enqueued on the master: pushing it again would run the
			// tick twice.
			r.log.Warn("scheduled job enqueued, but too few replicas acknowledged it: a failover now could lose this tick", "tick", tick, "error", err)
			return true, nil
		}
		return true, err
	})
	if err != nil {
		r.down.Fail(r.log, fmt.Errorf("enqueue tick %s: %w", tick.UTC().Format(time.RFC3339), err))
		r.log.Debug("schedule tick lost: cannot enqueue", "tick", tick, "error", err)
		return
	}
	r.log.Info("scheduled job enqueued", "class", r.e.Class, "queue", r.e.Queue, "id", id, "tick", tick.UTC().Format(time.RFC3339), "as", why)
	if r.hook != nil {
		r.hook(r.e, tick, true)
	}
}

// withBackoff calls f up to attempts times, backoffDelay apart, until it
// returns no error.
func withBackoff(ctx context.Context, f func() (bool, error)) (bool, error) {
	var err error
	for i := 0; i < attempts; i++ {
		var ok bool
		if ok, err = f(); err == nil {
			return ok, nil
		}
		if ctx.Err() != nil {
			return false, err
		}
		if snooze.For(ctx, backoffDelay); ctx.Err() != nil {
			return false, err
		}
	}
	return false, err
}

package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/resqued/resqued/pkg/queue"
)

// scrapeTimeout bounds the Redis reads of one scrape.
const scrapeTimeout = 5 * time.Second

// Collector exports Resque's global state, read from Redis on every
// scrape.
type Collector struct {
	q      *queue.Client
	clock  queue.HeadClock
	errors atomic.Uint64
	limits *queue.Limits
}

// WithLimits makes the Collector export the state of the concurrency and
// rate limits l (the handlers config's): resqued_concurrency_limit,
// resqued_concurrency_in_use, resqued_rate_limit, resqued_rate_started,
// resqued_rate_limited_total and resqued_limit_waiting, each by limit.
func (c *Collector) WithLimits(l *queue.Limits) *Collector {
	c.limits = l
	return c
}

// NewCollector returns a Collector reading through q; register it in a
// Registry.
func NewCollector(q *queue.Client) *Collector { return &Collector{q: q} }

// Collect implements Source. When Redis cannot be read it exports only
// resqued_redis_errors_total, counted up.
func (c *Collector) Collect(w *Writer) {
	defer func() {
		w.Family("resqued_redis_errors_total", "Scrapes that failed to read Redis.", "counter")
		w.Sample("resqued_redis_errors_total", float64(c.errors.Load()))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	processed, failed, err := c.q.Counters(ctx)
	if err != nil {
		c.errors.Add(1)
		return
	}
	qs, err := c.q.QueueHeads(ctx)
	if err != nil {
		c.errors.Add(1)
		return
	}
	backlog, err := c.backlog(ctx)
	if err != nil {
		c.errors.Add(1)
		return
	}
	ws, err := c.q.WorkerInfos(ctx)
	if err != nil {
		c.errors.Add(1)
		return
	}
	locks, err := c.q.UniqueLocks(ctx)
	if err != nil {
		c.errors.Add(1)
		return
	}
	var limits []queue.LimitUse
	if c.limits != nil {
		names := make([]string, len(qs))
		for i, q := range qs {
			names[i] = q.Queue
		}
		if limits, err = c.q.LimitsInUse(ctx, c.limits, names); err != nil {
			c.errors.Add(1)
			return
		}
	}
	w.Family("resque_processed_total", "Jobs processed by all Resque workers (stat:processed).", "counter")
	w.Sample("resque_processed_total", float64(processed))
	w.Family("resque_failed_total", "Jobs failed across all Resque workers (stat:failed).", "counter")
	w.Sample("resque_failed_total", float64(failed))
	w.Family("resque_queue_size", "Jobs waiting in each queue.", "gauge")
	for _, q := range qs {
		w.Sample("resque_queue_size", float64(q.Size), "queue", q.Queue)
	}
	w.Family("resque_queue_paused", "1 while the queue is paused (resque-pause's pause:queue:<q>, resqued queue pause), else 0.", "gauge")
	for _, q := range qs {
		paused := 0.0
		if q.Paused {
			paused = 1
		}
		w.Sample("resque_queue_paused", paused, "queue", q.Queue)
	}
	c.writeLatency(w, qs)
	backlog.write(w)
	var busy, idle, paused int
	for _, wi := range ws {
		switch wi.State {
		case "working":
			busy++
		case "paused":
			paused++
		default:
			idle++
		}
	}
	w.Family("resque_workers", "Registered Resque workers by state.", "gauge")
	w.Sample("resque_workers", float64(busy), "state", "busy")
	w.Sample("resque_workers", float64(idle), "state", "idle")
	w.Sample("resque_workers", float64(paused), "state", "paused")
	// One SCAN pass over the keyspace per scrape (docs/operations.md,
	// Unique jobs): bounded by the database's size, never per job.
	w.Family("resqued_unique_locks", "Unique locks resqued's jobs hold now (their holder keys; a Ruby app's resque-loner locks have none).", "gauge")
	w.Sample("resqued_unique_locks", float64(locks))
	if c.limits != nil {
		writeLimits(w, limits)
	}
}

// writeLimits exports the limits' state, one sample per limit (the
// class, or class:value for a limit with a key path, or queue:q for
// queue q's limit).
func writeLimits(w *Writer, ls []queue.LimitUse) {
	w.Family("resqued_concurrency_limit", "Most jobs of a limit running at once across every worker (handlers config concurrency).", "gauge")
	for _, l := range ls {
		if l.Concurrency > 0 {
			w.Sample("resqued_concurrency_limit", float64(l.Concurrency), "limit", l.Limit)
		}
	}
	w.Family("resqued_concurrency_in_use", "Slots of a concurrency limit held now.", "gauge")
	for _, l := range ls {
		if l.Concurrency > 0 {
			w.Sample("resqued_concurrency_in_use", float64(l.InUse), "limit", l.Limit)
		}
	}
	for _, f := range []struct {
		name, help, kind string
		v                func(queue.LimitUse) float64
	}{
		{"resqued_rate_limit", "Most starts of a rate limit per its period (handlers config rate).", "gauge", func(l queue.LimitUse) float64 { return float64(l.Rate) }},
		{"resqued_rate_period_seconds", "The period of a rate limit.", "gauge", func(l queue.LimitUse) float64 { return l.Per.Seconds() }},
		{"resqued_rate_started", "Starts of a rate limit within its last period.", "gauge", func(l queue.LimitUse) float64 { return float64(l.Started) }},
		{"resqued_rate_limited_total", "Looks at a job that its rate limit held back.", "counter", func(l queue.LimitUse) float64 { return float64(l.RateLimited) }},
	} {
		w.Family(f.name, f.help, f.kind)
		for _, l := range ls {
			if l.Rate > 0 {
				w.Sample(f.name, f.v(l), "limit", l.Limit)
			}
		}
	}
	w.Family("resqued_limit_waiting", "Jobs of a limited class queued (counted in the first 1000 of each queue), or in a limited queue.", "gauge")
	for _, l := range ls {
		w.Sample("resqued_limit_waiting", float64(l.Waiting), "limit", l.Limit)
	}
}

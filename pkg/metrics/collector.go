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
}

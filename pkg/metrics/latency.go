package metrics

import (
	"context"
	"time"

	"github.com/resqued/resqued/pkg/queue"
)

// writeLatency writes resque_queue_latency_seconds: the age of each
// queue's head job, from its enqueue time when the payload carries one,
// else from when this collector first saw it (queue.HeadClock). An empty
// queue is 0.
func (c *Collector) writeLatency(w *Writer, qs []queue.QueueHead) {
	lat := c.clock.Latencies(qs, time.Now())
	w.Family("resque_queue_latency_seconds", "Age of the oldest job in each queue (its enqueued_at, else when resqued first saw it); 0 when empty.", "gauge")
	for i, q := range qs {
		w.Sample("resque_queue_latency_seconds", lat[i].Seconds(), "queue", q.Queue)
	}
}

// backlog is what waits outside the queues: delayed items and failures.
type backlog struct {
	delayed, timestamps, failed int
}

// backlog reads the delayed set and the failed list's length.
func (c *Collector) backlog(ctx context.Context) (backlog, error) {
	var b backlog
	var err error
	if b.delayed, b.timestamps, err = c.q.DelayedCount(ctx); err != nil {
		return b, err
	}
	b.failed, err = c.q.FailedCount(ctx)
	return b, err
}

func (b backlog) write(w *Writer) {
	w.Family("resque_delayed_jobs", "Delayed jobs and retries waiting for their time (resque-scheduler's delayed:<ts> lists).", "gauge")
	w.Sample("resque_delayed_jobs", float64(b.delayed))
	w.Family("resque_delayed_timestamps", "Distinct times delayed jobs wait for (delayed_queue_schedule).", "gauge")
	w.Sample("resque_delayed_timestamps", float64(b.timestamps))
	w.Family("resque_failed_jobs", "Failure records in the failed list now (resque_failed_total counts every failure ever).", "gauge")
	w.Sample("resque_failed_jobs", float64(b.failed))
}

package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resqued/resqued/pkg/queue"
)

// scrapeTimeout bounds the Redis reads of one scrape.
const scrapeTimeout = 5 * time.Second

// Collector reads Resque's state from Redis on each scrape.
type Collector struct {
	q *queue.Client

	processed *prometheus.Desc
	failed    *prometheus.Desc
	queueSize *prometheus.Desc
	workers   *prometheus.Desc
	errors    prometheus.Counter
}

// NewCollector returns a Collector reading through q. Register it with a
// prometheus.Registerer.
func NewCollector(q *queue.Client) *Collector {
	return &Collector{
		q: q,
		processed: prometheus.NewDesc("resque_processed_total",
			"Jobs processed by all Resque workers (stat:processed).", nil, nil),
		failed: prometheus.NewDesc("resque_failed_total",
			"Jobs failed across all Resque workers (stat:failed).", nil, nil),
		queueSize: prometheus.NewDesc("resque_queue_size",
			"Jobs waiting in each queue.", []string{"queue"}, nil),
		workers: prometheus.NewDesc("resque_workers",
			"Registered Resque workers by state.", []string{"state"}, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "resqued_redis_errors_total",
			Help: "Scrapes that failed to read Redis.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.processed
	ch <- c.failed
	ch <- c.queueSize
	ch <- c.workers
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector. When Redis cannot be read it
// counts an error and exports only what it read before the failure.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	defer c.errors.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	processed, failed, err := c.q.Counters(ctx)
	if err != nil {
		c.errors.Inc()
		return
	}
	ch <- prometheus.MustNewConstMetric(c.processed, prometheus.CounterValue, float64(processed))
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(failed))
	qs, err := c.q.QueueSizes(ctx)
	if err != nil {
		c.errors.Inc()
		return
	}
	for _, q := range qs {
		ch <- prometheus.MustNewConstMetric(c.queueSize, prometheus.GaugeValue, float64(q.Size), q.Queue)
	}
	ws, err := c.q.WorkerInfos(ctx)
	if err != nil {
		c.errors.Inc()
		return
	}
	states := map[string]int{"busy": 0, "idle": 0, "paused": 0}
	for _, w := range ws {
		switch w.State {
		case "working":
			states["busy"]++
		case "paused":
			states["paused"]++
		default:
			states["idle"]++
		}
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(c.workers, prometheus.GaugeValue, float64(n), s)
	}
}

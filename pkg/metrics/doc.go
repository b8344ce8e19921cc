// Package metrics exposes resqued's Prometheus metrics and its health
// check.
//
// Two sources feed it:
//
//   - Collector reads Redis on every scrape, through pkg/queue's admin
//     views: the global resque_processed_total and resque_failed_total
//     counters (stat:processed, stat:failed), resque_queue_size{queue},
//     resque_workers{state} (busy, idle, paused), and
//     resqued_redis_errors_total for scrapes that could not read Redis.
//     Nothing is cached; a scrape costs a handful of pipelined reads.
//   - Jobs is in-process instrumentation for the worker:
//     resqued_job_duration_seconds{class,outcome} (outcome ok, failed or
//     retried) and resqued_jobs_in_flight.
//
// The delayed-job count (resque-scheduler's delayed:<ts> lists) is not
// exported: it needs one LLEN per scheduled timestamp, which is not cheap
// enough to do on every scrape.
//
// With --count above 1 the supervisor serves only Collector and Healthz;
// the per-worker job histograms live in the worker processes and are not
// exported in that mode.
//
// Dependency: github.com/prometheus/client_golang, the official Prometheus
// Go client. It is the reference implementation of the exposition format
// (text and protobuf, content negotiation, OpenMetrics), so resqued does
// not hand-roll an encoder that would drift from what Prometheus parses.
package metrics

// Package metrics exposes resqued's Prometheus metrics and its health
// check.
//
// Two sources feed it:
//
//   - Collector reads Redis on every scrape, through pkg/queue's admin
//     views: the global resque_processed_total and resque_failed_total
//     counters (stat:processed, stat:failed), resque_queue_size{queue},
//     resque_queue_paused{queue} (1 while the queue is paused),
//     resque_queue_latency_seconds{queue} (the age of each queue's head
//     job, see queue.EnqueuedAt and queue.HeadClock), resque_workers{state}
//     (busy, idle, paused), resque_delayed_jobs and
//     resque_delayed_timestamps (resque-scheduler's delayed set, which
//     holds resqued's retries too), resque_failed_jobs (the failed list's
//     length), and resqued_redis_errors_total for scrapes that could not
//     read Redis. Nothing is cached but the first-seen times of heads
//     without an enqueue time; a scrape costs a handful of pipelined
//     reads, plus one LLEN per delayed timestamp, pipelined a thousand at
//     a time.
//   - Jobs is in-process instrumentation for the worker:
//     resqued_job_duration_seconds{class,outcome} (outcome ok, failed or
//     retried), resqued_jobs_in_flight, resqued_jobs_cancelled_total and
//     resqued_jobs_limit_kills_total{limit} (memory, cpu, output, procs),
//     the last two counted by Jobs.Failed and written from 0 on.
//
// With --count above 1 the supervisor serves only Collector and Healthz;
// the per-worker job metrics (histograms and the cancel and limit-kill
// counters) live in the worker processes and are not exported in that
// mode.
//
// Process adds the process_* metrics (CPU, resident and virtual memory,
// start time, file descriptors) and go_goroutines, go_info and two
// go_memstats_* gauges, under the Prometheus client libraries' names.
//
// The exposition is the Prometheus text format, version 0.0.4, which
// every Prometheus server (and OpenMetrics scraper) accepts, written by
// expo.go. resqued used github.com/prometheus/client_golang for it until
// issue 14: the client, with protobuf, procfs and expfmt, was 3.7 MB of
// the binary, and on a kernel that maps whole large folios of the
// executable (Linux 6.18 on ext4) that was ~2.3 MiB of resident memory in
// every process, the supervisor and each worker, for an encoder of four
// counters, gauges and one histogram.
package metrics

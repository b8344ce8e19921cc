// Package history keeps the dashboard's history: how many jobs were
// processed and failed each minute (overall, per queue and per class),
// how long each class's jobs took (in the buckets of the Prometheus
// histogram resqued_job_duration_seconds), each queue's size and latency
// sampled once a minute, and what each worker was doing every 10
// seconds. Resque keeps none of it.
//
// It owns the policy; pkg/queue owns the keys and the I/O (history.go
// there documents the layout):
//
//   - Recorder counts a worker's jobs and states in memory and flushes
//     them every 5 seconds in one MULTI/EXEC, so a job costs a map update,
//     not a Redis round trip. A killed worker loses at most its last 5
//     seconds of history; the job's own record is not part of history
//     and loses nothing.
//   - Sampler writes the queues' sizes and latencies, one process per
//     minute for the whole fleet.
//   - Reader turns the stored minutes and hours into the series the
//     dashboard draws: throughput over the last hour, day or week; each
//     queue's last hour; each class's last hour against its baseline
//     (the 24 hours before), with p50 and p95 estimated from the buckets
//     as Prometheus's histogram_quantile does; each worker's last 10
//     minutes.
//
// History is approximate by design, and says so: a flush whose reply is
// lost after Redis applied it counts twice, and a crash loses the counts
// not yet flushed. stat:processed and stat:failed stay the exact totals.
package history

package queue

import (
	"strconv"
	"strings"
)

// Every Redis key resqued reads or writes for queues, workers, stats and
// failures is built here and nowhere else. ns is the namespace without its
// trailing colon ("resque" by default), exactly as Ruby Resque's
// Resque.redis.namespace.

// QueuesKey is the set of every queue name ever pushed to.
func QueuesKey(ns string) string { return ns + ":queues" }

// QueueKey is the list holding the jobs of queue q.
func QueueKey(ns, q string) string { return ns + ":queue:" + q }

// QueuePrefix is what QueueKey puts before the queue name. The reserve
// script gets it as an argument to strip it from the queue key it took a
// job from (never to build a key: a script touches only the keys it
// declares), so the layout lives here alone.
func QueuePrefix(ns string) string { return ns + ":queue:" }

// FailedKey is the list of failure records.
func FailedKey(ns string) string { return ns + ":failed" }

// WorkersKey is the set of registered worker ids.
func WorkersKey(ns string) string { return ns + ":workers" }

// WorkerKey holds what worker id is doing, only while it runs a job.
func WorkerKey(ns, id string) string { return ns + ":worker:" + id }

// WorkerStartedKey holds when worker id started, in Ruby's Time#to_s form.
func WorkerStartedKey(ns, id string) string { return ns + ":worker:" + id + ":started" }

// HeartbeatKey is the hash of worker id to last heartbeat time.
func HeartbeatKey(ns string) string { return ns + ":workers:heartbeat" }

// StatKey is a global counter: name is "processed" or "failed".
func StatKey(ns, name string) string { return ns + ":stat:" + name }

// WorkerStatKey is a per-worker counter, deleted when the worker leaves.
func WorkerStatKey(ns, name, id string) string { return ns + ":stat:" + name + ":" + id }

// PauseAllKey, when set to "true", pauses every worker (Ruby Resque 2.x).
func PauseAllKey(ns string) string { return ns + ":pause-all-workers" }

// QueuePauseKey, while it exists, pauses queue q: no worker takes a job
// from it. It is resque-pause's key (ResquePauseHelper.pause sets it to
// "true" and unpause deletes it; paused? asks only whether it exists), so
// that a Ruby app using resque-pause and resqued agree both ways.
func QueuePauseKey(ns, q string) string { return QueuePausePrefix(ns) + q }

// QueuePausePrefix is what QueuePauseKey puts before the queue name.
func QueuePausePrefix(ns string) string { return ns + ":pause:queue:" }

// PruneLockKey is the lock a worker holds while it prunes dead workers.
func PruneLockKey(ns string) string { return ns + ":pruning_dead_workers_in_progress" }

// The delayed-job keys are resque-scheduler's, byte for byte (pkg/delayed).

// DelayedScheduleKey is the sorted set of timestamps that have delayed
// jobs: member and score are both the Unix time.
func DelayedScheduleKey(ns string) string { return ns + ":delayed_queue_schedule" }

// DelayedKey is the list of items due at Unix time ts.
func DelayedKey(ns string, ts int64) string { return ns + ":" + TimestampsEntry(ts) }

// TimestampsKey is the set of DelayedKey names (without the namespace,
// TimestampsEntry) under which the encoded item is stored.
func TimestampsKey(ns, item string) string { return TimestampsPrefix(ns) + item }

// TimestampsPrefix is what TimestampsKey puts before the item.
func TimestampsPrefix(ns string) string { return ns + ":timestamps:" }

// TimestampsEntry is the member of an item's TimestampsKey set that
// names DelayedKey(ns, ts): the key without its namespace, as
// resque-scheduler writes it ("delayed:<ts>").
func TimestampsEntry(ts int64) string { return "delayed:" + strconv.FormatInt(ts, 10) }

// ScheduleLockKey is the once-per-tick lock of recurring schedule entry
// name: the daemon whose SET NX on it succeeds enqueues that tick's job.
// tick is the tick's Unix time in seconds.
func ScheduleLockKey(ns, name string, tick int64) string {
	return ns + ":resqued:schedule:" + name + ":" + strconv.FormatInt(tick, 10)
}

// OwnerKey is resqued's lease on worker id: the random token of the live
// process that holds the id, with a short expiry that process renews. A
// Resque worker id (host:pid:queues) is unique only within one PID
// namespace; the lease is what tells two live processes with one id apart
// (containers that share a fixed hostname, each its own PID 1).
func OwnerKey(ns, id string) string { return ns + ":resqued:owner:" + id }

// RedeliveriesKey counts how often the job whose payload has SHA-1 digest
// was recovered from a worker that died holding it. It lives outside the
// payload, so Ruby and PHP workers see the job unchanged.
func RedeliveriesKey(ns, digest string) string { return ns + ":resqued:redeliveries:" + digest }

// RetryAttemptKey is resque-retry's attempt counter of a job: class and
// identifier as resque-retry's redis_retry_key builds them
// (['resque-retry', name, retry_identifier(*args)].compact.join(':'),
// whitespace removed; see RetryIdentifier). An empty identifier (args
// that join to "") is left out, as Ruby's compact drops its nil.
func RetryAttemptKey(ns, class, identifier string) string {
	k := "resque-retry:" + class
	if identifier != "" {
		k += ":" + identifier
	}
	return ns + ":" + strings.Map(func(r rune) rune {
		if strings.ContainsRune(" \t\r\n\f\v", r) {
			return -1
		}
		return r
	}, k)
}

// DelayedStatusKey is resqued's hash of the tracked delayed jobs whose
// queue, class and args have digest (DelayedStatusDigest): status token
// -> "<ts>:<item>". It lets a worker find the token of a job that a Ruby
// resque-scheduler moved without its "id".
func DelayedStatusKey(ns, digest string) string { return ns + ":resqued:delayed-status:" + digest }

// DelayedStatusAnyKey exists while any DelayedStatusKey may: it is set
// with the longest of their expiries. The reserve script reads it, so
// that a job without an "id" costs a look-up in the index only while
// tracked delayed jobs are about, not always.
func DelayedStatusAnyKey(ns string) string { return ns + ":resqued:delayed-status:any" }

// SchedulerWakeKey is the list resqued's delayed-job poller blocks on
// (BLPOP) between passes. Delay and RetryJob push one token onto it when
// the item they add is due before anything else still waiting, so the
// poller moves it at once rather than at its next poll; the list never
// holds more than one element. Items written by other tools (Ruby
// resque-scheduler) push nothing and are found by the next poll.
func SchedulerWakeKey(ns string) string { return ns + ":resqued:scheduler:wake" }

// CancelKey is the list of cancel requests (CancelRequest, JSON) for the
// job worker id is running. The worker waits on it (BLPOP) only while a
// job runs; each request pushed sets a one-hour expiry, so requests
// nobody takes (the job ended first) do not accumulate.
func CancelKey(ns, id string) string { return ns + ":resqued:cancel:" + id }

// OutputKey holds what the job with output id job (OutputID) printed,
// kept by --keep-output with that expiry: one JSON document, an Output.
func OutputKey(ns, job string) string { return ns + ":resqued:output:" + job }

// OutputIndexKey is the sorted set of the output ids whose OutputKey may
// exist, scored by when each was written (Unix ms); it bounds how many
// are kept (--keep-output-max-jobs).
func OutputIndexKey(ns string) string { return ns + ":resqued:outputs" }

// UniqueLockKey is resque-loner's lock of the unique job of queue q
// whose class and args have digest (UniqueDigest):
// "loners:queue:<q>:job:<md5>" under the namespace, holding "1", as
// resque-loner's unique_job_queue_key builds it
// (lib/resque-loner/helpers.rb). While it exists, a unique copy of that
// job is queued, delayed or running, and no other is admitted.
func UniqueLockKey(ns, q, digest string) string { return ns + ":loners:queue:" + q + ":job:" + digest }

// UniqueHolderKey holds the id of the job that took UniqueLockKey(ns,
// q, digest), with the same expiry. resque-loner's lock holds only "1";
// the holder is resqued's, so that a job ending deletes the lock only
// while the lock is still its own (compare-and-delete), and so that a
// refused enqueue can say which job holds it.
func UniqueHolderKey(ns, q, digest string) string {
	return UniqueHolderPrefix(ns) + q + ":" + digest
}

// UniqueHolderPrefix begins every UniqueHolderKey of namespace ns:
// UniqueLocks counts the keys under it.
func UniqueHolderPrefix(ns string) string { return ns + ":resqued:unique:" }

// ConcurrencyKey is the sorted set of the slots held in concurrency
// limit name (the class, or class:value with a key path): members are
// holders (worker id:SHA-1 of the record holding the job), scores when
// each lapses (Unix ms, Redis's clock) unless renewed with the holder's
// lease.
func ConcurrencyKey(ns, name string) string { return ns + ":resqued:concurrency:" + name }

// QueueConcurrencyKey is the sorted set of the slots held in queue q's
// concurrency limit (jobs taken from q, whatever their class), laid out
// as ConcurrencyKey's; a key of its own, so that a queue and a class of
// the same name never share slots.
func QueueConcurrencyKey(ns, q string) string { return ns + ":resqued:queue-concurrency:" + q }

// RateKey is the sorted set of the starts within the last period of rate
// limit name: members the starting holders, scores when each started
// (Unix ms, Redis's clock).
func RateKey(ns, name string) string { return ns + ":resqued:rate:" + name }

// RateLimitedKey counts the starts rate limit name held back (a job
// waited for a start to free).
func RateLimitedKey(ns, name string) string { return ns + ":resqued:rate-limited:" + name }

// HistoryMinuteKey is the hash of the counts of all jobs and of each
// queue in minute min (Unix minutes), and the queues' size and latency
// samples (history.go); HistoryMinuteTTL.
func HistoryMinuteKey(ns string, min int64) string {
	return HistoryPrefix(ns) + "m:" + strconv.FormatInt(min, 10)
}

// HistoryClassMinuteKey is the hash of each class's counts in minute
// min; HistoryClassMinuteTTL.
func HistoryClassMinuteKey(ns string, min int64) string {
	return HistoryPrefix(ns) + "cm:" + strconv.FormatInt(min, 10)
}

// HistoryHourKey is the hash of the counts of all jobs and of each queue
// in hour h (Unix hours); HistoryHourTTL.
func HistoryHourKey(ns string, h int64) string {
	return HistoryPrefix(ns) + "h:" + strconv.FormatInt(h, 10)
}

// HistoryClassHourKey is the hash of each class's counts in hour h;
// HistoryClassHourTTL.
func HistoryClassHourKey(ns string, h int64) string {
	return HistoryPrefix(ns) + "ch:" + strconv.FormatInt(h, 10)
}

// HistoryWorkerKey is the hash of worker id to its six 10-second slots
// in minute min; HistoryWorkerTTL.
func HistoryWorkerKey(ns string, min int64) string {
	return HistoryPrefix(ns) + "w:" + strconv.FormatInt(min, 10)
}

// HistoryPrefix is what every history key (history.go) starts with.
func HistoryPrefix(ns string) string { return ns + ":resqued:history:" }

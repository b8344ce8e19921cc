// Package queue owns the Resque key layout and every Redis read and write of
// jobs, queues, workers, stats, failures, delayed items and recurring
// ticks: it is the one door to Redis (with pkg/status for statuses, and
// pkg/redisurl to dial). pkg/delayed, pkg/recurring, pkg/metrics, pkg/web
// and cmd/resqued ask it; `make check` fails when another package imports
// the Redis client. It knows nothing about processes: pkg/runner runs
// handlers, pkg/worker wires the two together.
//
// The layout is Ruby Resque's, byte for byte, so that Ruby Resque,
// php-resque, goworker and resque-web share a Redis with resqued. With the
// default namespace "resque":
//
//	resque:queues                 set     every queue name ever pushed to
//	resque:queue:<q>              list    job payloads, RPUSHed, LPOPped
//	resque:workers                set     registered worker ids host:pid:queues
//	resque:worker:<id>            string  {"queue","run_at","payload"} while a job runs
//	resque:worker:<id>:started    string  "2026-11-27 08:50:02 +0000"
//	resque:workers:heartbeat      hash    id -> "2026-11-27T08:50:02+00:00"
//	resque:stat:processed         string  jobs processed (failed ones too)
//	resque:stat:failed            string  jobs failed
//	resque:stat:<name>:<id>       string  the same per worker, removed on exit
//	resque:failed                 list    failure records (see Failure)
//	resque:pause-all-workers      string  "true" pauses every worker
//	resque:pause:queue:<q>        string  "true" pauses queue q (resque-pause)
//	resque:job:<id>:status        string  php-resque status (pkg/status)
//	resque:delayed_queue_schedule zset    resque-scheduler's delayed timestamps
//	resque:delayed:<ts>           list    delayed items due at <ts>
//	resque:timestamps:<item>      set     "delayed:<ts>" lists holding <item>
//	resque:resque-retry:<C>:<id>  string  resque-retry's attempt counter
//	resque:pruning_dead_workers_in_progress
//	                              string  the pruner's lock (Ruby Resque)
//	resque:resqued:owner:<id>     string  the live process's lease on id
//	resque:resqued:redeliveries:<sha1>
//	                              string  how often a job was recovered
//	resque:resqued:schedule:<name>:<tick>
//	                              string  a recurring tick's lock (ClaimTick)
//	resque:resqued:delayed-status:<digest>
//	                              hash    token -> "<ts>:<item>" of tracked
//	                                      delayed jobs (DelayedStatusKey)
//	resque:resqued:delayed-status:any
//	                              string  exists while any of those may
//	resque:resqued:cancel:<id>    list    cancel requests to worker id
//	                                      (CancelRequest), 1 h expiry
//	resque:loners:queue:<q>:job:<md5>
//	                              string  "1": resque-loner's unique-job lock
//	                                      (UniqueLockKey, unique.go)
//	resque:resqued:unique:<q>:<md5>
//	                              string  the id of the job holding it
//	resque:resqued:output:<id>    string  a job's kept output (KeepOutput)
//	resque:resqued:outputs        zset    kept output ids by time (the cap)
//	resque:resqued:history:m:<min>
//	                              hash    counts of all jobs and each queue
//	                                      in a minute, queue samples (25 h)
//	resque:resqued:history:cm:<min>
//	                              hash    each class's counts in a minute (2 h)
//	resque:resqued:history:h:<hour>
//	                              hash    all jobs' and queues' counts in an hour (8 d)
//	resque:resqued:history:ch:<hour>
//	                              hash    each class's counts in an hour (27 h)
//	resque:resqued:history:w:<min>
//	                              hash    worker id -> its 10 s slots (1 h)
//
// Where the I/O lives: enqueue.go (Enqueue, Bulk), fetch.go and finish.go
// (reserve, outcome), retry.go, output.go (kept output), delayed.go (Delay, ListDelayed,
// MoveDelayed), item.go (the one delayed-item encoder), peek.go,
// counters.go (Counters, Ping), ticklock.go, admin.go (stats, failures),
// workers.go, heartbeats.go, owner.go, orphan.go, prunelock.go, pause.go,
// queuepause.go (pausing one queue), rubycompat.go (what a Ruby
// scheduler drops), unique.go and lonerdigest.go (unique jobs' locks,
// resque-loner's digest), cancel.go (finding a job to cancel, removing
// a waiting one, the cancel request and its wait), history.go (the
// dashboard's history: field layout, flush, samples, reads).
//
// All keys are built in keys.go, those Lua scripts use too: a script gets
// its keys in KEYS, or, where it learns a key only as it runs (a queue
// named by a delayed item), a prefix from keys.go in ARGV; a test fails
// on a Lua string literal that spells a piece of the layout. Writes that
// touch several keys are one MULTI/EXEC transaction or one Lua script.
package queue

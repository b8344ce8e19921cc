// Package queue owns the Resque key layout and every Redis read and write of
// jobs, queues, workers, stats and failures. It knows nothing about
// processes: pkg/runner runs handlers, pkg/worker wires the two together.
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
//	resque:job:<id>:status        string  php-resque status (pkg/status)
//	resque:delayed_queue_schedule zset    resque-scheduler's delayed timestamps
//	resque:delayed:<ts>           list    delayed items due at <ts>
//	resque:timestamps:<item>      set     "delayed:<ts>" lists holding <item>
//	resque:resque-retry:<C>:<id>  string  resque-retry's attempt counter
//	resque:resqued:delayed-status:<digest>
//	                              hash    token -> "<ts>:<item>" of tracked
//	                                      delayed jobs (DelayedStatusKey)
//
// All keys are built in keys.go. Writes that touch several keys are one
// MULTI/EXEC transaction or one Lua script that declares all its keys.
package queue

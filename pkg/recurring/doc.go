// Package recurring runs resque-scheduler-style recurring jobs from a
// schedule.yml: each entry names a job class, a queue, its args and either
// a cron expression or an "every" interval, and at each of its ticks one
// job is pushed onto the queue.
//
// The file has resque-scheduler's shape:
//
//	clear_cache:
//	  cron: "0 * * * *"
//	  class: ClearCache
//	  queue: low
//	  args: [all]
//	  description: Clears the cache every hour
//	poll_feeds:
//	  every: ["30s", {first_in: "10s"}]
//	  class: PollFeeds
//	  queue: feeds
//
// Several daemons may share one Redis and load the same schedule. Each
// tick is enqueued once across all of them: at a tick every daemon tries
// SET <ns>:resqued:schedule:<name>:<tick unix time> NX EX 3600 (or the
// interval, if longer), and only the one whose SET succeeds enqueues. The
// trade-off is that a daemon that wins the lock and dies (or loses Redis)
// before its push lands loses that tick: the others have already given it
// up, and nobody retries it.
//
// Ticks come from the wall clock, so every daemon computes the same ones:
// "every" ticks are the multiples of the interval since the Unix epoch
// (every: 1h fires at the top of each hour, every: 1d at 00:00 UTC), cron
// ticks are the cron expression's times in the daemon's local time zone
// unless the expression names one. Ticks missed while no daemon ran are
// not replayed, as with resque-scheduler.
package recurring

// Package delayed owns the loop that moves due delayed jobs onto their
// queues: when to look, how much to move at a time, what to log while
// Redis is away. It does no Redis I/O of its own: pkg/queue owns
// resque-scheduler's delayed-job layout, writes delayed items
// (Client.Delay, Client.RetryJob), lists them (Client.ListDelayed) and
// holds the script that moves them (Client.MoveDelayed).
//
// The layout is resque-scheduler's (lib/resque/scheduler/delaying_extensions.rb),
// byte for byte, so a Ruby Resque.enqueue_at job is run by resqued and a
// job delayed by resqued shows in resque-web's Delayed tab. With the
// default namespace "resque":
//
//	resque:delayed_queue_schedule     zset    member and score: Unix time ts
//	resque:delayed:<ts>               list    items {"class","args","queue"} due at ts
//	resque:timestamps:<item>          set     "delayed:<ts>" for each list holding item
//
// An item written by resqued keeps the payload's bytes, other fields
// ("id") and all, and adds "queue" last (queue.DelayedItem); one without
// other fields is exactly what Ruby's Resque.enqueue_at_with_queue writes.
//
// MoveDue runs one Lua script per due timestamp, so each item leaves its
// list, its timestamps entry and (when the list empties) the schedule in
// the same step as it is pushed: any number of schedulers, resqued or
// Ruby, can run at once and each item is moved exactly once.
//
// Run polls at most every MaxIdle (5 s, resque-scheduler's default) while
// nothing is due sooner: between passes it blocks on the wake list
// (queue.SchedulerWakeKey), which resqued's own Delay and RetryJob push to
// when they add the item due first, so those move when due; items other
// tools write move within MaxIdle. Idle, that is two commands per MaxIdle.
package delayed

// Package delayed owns resque-scheduler's delayed-job layout and the
// loop that moves due delayed jobs onto their queues. It knows nothing
// about processes or handlers: pkg/queue owns the queues the jobs land on.
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
// An item written by resqued keeps the payload's other fields ("id")
// between "args" and "queue"; one without them is exactly what Ruby's
// Resque.enqueue_at_with_queue writes.
//
// MoveDue runs one Lua script per due timestamp, so each item leaves its
// list, its timestamps entry and (when the list empties) the schedule in
// the same step as it is pushed: any number of schedulers, resqued or
// Ruby, can run at once and each item is moved exactly once.
package delayed

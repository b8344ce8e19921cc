// Package outage logs a loop's Redis outages as two lines, and spaces its
// attempts while Redis is away.
//
// Every loop that talks to Redis (a worker's job loop and heartbeat, the
// delayed-job scheduler, the recurring schedule) holds one Log or
// Backoff and reports each call's outcome to it. The first failure of a
// streak is logged at Error ("redis unavailable, backing off until it is
// back"), the failures after it at Debug ("redis still unavailable"), and
// the first success after them at Info ("redis reachable again"). So an
// outage costs one line when it starts and one when it ends, per loop,
// however often the loop tries meanwhile. The loop is named by the logger
// it passes (resqued.scheduler, resqued.worker.heartbeat, ...).
//
// The delay between attempts is the backoff; "retry" is kept for the job
// retry policy (pkg/retry).
package outage

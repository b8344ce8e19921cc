package outage

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Log tracks one loop's outage. The zero value is ready to use; a Log is
// safe for concurrent use, so goroutines of one loop may share it.
type Log struct {
	mu       sync.Mutex
	failures int
	since    time.Time
}

// Fail records a failed call: at Error for the first of a streak, at Debug
// after that. kv are extra fields for the Debug line (the backoff, say).
func (o *Log) Fail(log hclog.Logger, err error, kv ...interface{}) {
	o.mu.Lock()
	o.failures++
	n := o.failures
	if n == 1 {
		o.since = time.Now()
	}
	o.mu.Unlock()
	if n == 1 {
		log.Error("redis unavailable, backing off until it is back", "error", err)
		return
	}
	log.Debug("redis still unavailable", append([]interface{}{"error", err, "attempt", n}, kv...)...)
}

// OK records a successful call, logging the recovery at Info if it ends
// an outage.
func (o *Log) OK(log hclog.Logger) {
	o.mu.Lock()
	n, since := o.failures, o.since
	o.failures = 0
	o.mu.Unlock()
	if n > 0 {
		log.Info("redis reachable again", "after_attempts", n, "down_for", time.Since(since).Round(time.Millisecond))
	}
}

// Report is OK for a nil err and Fail otherwise.
func (o *Log) Report(log hclog.Logger, err error) {
	if err == nil {
		o.OK(log)
		return
	}
	o.Fail(log, err)
}

// Down reports whether the last call failed.
func (o *Log) Down() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failures > 0
}

// Backoff is a Log with a capped exponential delay between attempts:
// 100ms doubling to 1s, so that work resumes within a second of Redis
// coming back. Use it from one goroutine.
type Backoff struct {
	Log
	d time.Duration
}

const (
	firstDelay = 100 * time.Millisecond
	maxDelay   = time.Second
)

// NewBackoff returns a Backoff at its first delay.
func NewBackoff() *Backoff { return &Backoff{d: firstDelay} }

// Fail records a failed call (see Log.Fail).
func (b *Backoff) Fail(log hclog.Logger, err error) { b.Log.Fail(log, err, "backoff", b.delay()) }

// Reset records a success and goes back to the first delay.
func (b *Backoff) Reset(log hclog.Logger) {
	b.Log.OK(log)
	b.d = firstDelay
}

// Wait sleeps the current delay, or less if wake closes, then doubles
// the delay up to its cap.
func (b *Backoff) Wait(wake <-chan struct{}) {
	t := time.NewTimer(b.delay())
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	}
	if b.d = 2 * b.delay(); b.d > maxDelay {
		b.d = maxDelay
	}
}

func (b *Backoff) delay() time.Duration {
	if b.d == 0 {
		return firstDelay
	}
	return b.d
}

package queue

import (
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Replication is asynchronous: a write the master acknowledged may be
// missing on the replica promoted in a failover. With WithMinReplicas,
// every write that records or moves a job is followed, on the same
// connection, by WAIT N timeout (a Lua script cannot call WAIT), which
// returns once N replicas have the write or the timeout passes. The write
// has happened on the master either way: WAIT only says how many replicas
// have it. docs/reliability.md lists which writes a failover can lose.

// ErrNotAcknowledged is wrapped by the errors of writes that fewer than
// the configured replicas acknowledged in time (NotAcknowledgedError).
// The write itself was made, on the master: do not repeat it.
var ErrNotAcknowledged = errors.New("not acknowledged by enough replicas")

// NotAcknowledgedError is a write the master made but fewer than Want
// replicas acknowledged within Timeout.
type NotAcknowledgedError struct {
	// Op is what was written ("enqueue to default", "finish job");
	// Subject what it was about, when known: the job's id (the worker
	// id, the delayed timestamp).
	Op, Subject string
	// Want is --min-replicas; Got how many acknowledged, or -1 when the
	// WAIT itself failed (Err) and nobody knows.
	Want, Got int
	Timeout   time.Duration
	Err       error
}

func (e *NotAcknowledgedError) Error() string {
	what := e.Op
	if e.Subject != "" {
		what += " " + e.Subject
	}
	if e.Err != nil {
		return fmt.Sprintf("%s: wait for %d replicas: %v", what, e.Want, e.Err)
	}
	return fmt.Sprintf("%s: only %d of %d replicas acknowledged within %s", what, e.Got, e.Want, e.Timeout)
}

func (e *NotAcknowledgedError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrNotAcknowledged, e.Err}
	}
	return []error{ErrNotAcknowledged}
}

// Option configures a Client made by New.
type Option func(*Client)

// WithMinReplicas makes every write that records or moves a job wait
// until n replicas acknowledged it, for at most timeout (zero means 1s).
// n zero means no waiting, the default.
func WithMinReplicas(n int, timeout time.Duration) Option {
	return func(c *Client) {
		if timeout <= 0 {
			timeout = time.Second
		}
		c.minReplicas, c.replicaTimeout = n, timeout
	}
}

// WithReplicaReport sets what hears how the worker-side writes (reserve,
// finish, retry, release, unregister dead worker, move delayed jobs)
// fared with WithMinReplicas: err is a *NotAcknowledgedError, or nil once
// replicas acknowledged. Those writes return no error for it: the job
// goes on, and the report is the caller's to log. Nil means nobody hears.
func WithReplicaReport(f func(err error)) Option {
	return func(c *Client) { c.replicaReport = f }
}

// MinReplicas returns the replicas writes wait for and for how long.
func (c *Client) MinReplicas() (int, time.Duration) { return c.minReplicas, c.replicaTimeout }

// replicated waits, on conn, for the write just made on it to reach the
// configured replicas. It returns a *NotAcknowledgedError when fewer did
// in time, nil when enough did or none are asked for.
func (c *Client) replicated(conn redis.Conn, op, subject string) error {
	if c.minReplicas <= 0 {
		return nil
	}
	n, err := redis.Int(conn.Do("WAIT", c.minReplicas, c.replicaTimeout.Milliseconds()))
	if err == nil && n >= c.minReplicas {
		return nil
	}
	if err != nil {
		n = -1
	}
	return &NotAcknowledgedError{Op: op, Subject: subject, Want: c.minReplicas, Got: n, Timeout: c.replicaTimeout, Err: err}
}

// reportReplicated is replicated for the worker-side writes: the outcome
// goes to the WithReplicaReport function, not to the caller.
func (c *Client) reportReplicated(conn redis.Conn, op, subject string) {
	if c.minReplicas <= 0 {
		return
	}
	err := c.replicated(conn, op, subject)
	if c.replicaReport != nil {
		c.replicaReport(err)
	}
}

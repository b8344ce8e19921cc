package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// EnqueueOptions tune Enqueue.
type EnqueueOptions struct {
	// Track creates the php-resque status key for the payload's id, in
	// the same transaction as the push, so a fast worker's "running"
	// can never be overwritten by "waiting".
	Track bool
	// ID is the job id Track uses; required when Track is set.
	ID string
	// Now is the status timestamp; zero means time.Now().
	Now time.Time
	// Unique, when not zero, makes the job unique for that long (whole
	// seconds, ValidateUniqueTTL): it is enqueued only if it takes its
	// class and args' resque-loner lock, in the same step, and the
	// payload gets a "unique" field so its worker releases the lock when
	// it ends. ID is required: the lock records it. When another copy
	// holds the lock nothing is written, and the error is a
	// *DuplicateError (errors.Is ErrDuplicate) naming it.
	Unique time.Duration
}

// Enqueue adds payload to the tail of queue q and q to the queues set, in
// one transaction. With WithMinReplicas, an error wrapping
// ErrNotAcknowledged means the job was enqueued, but too few replicas
// have it yet: a failover now could lose it.
func (c *Client) Enqueue(ctx context.Context, q string, payload []byte, opt EnqueueOptions) error {
	if err := ValidateQueueName(q); err != nil {
		return err
	}
	if opt.Track && opt.ID == "" {
		return fmt.Errorf("enqueue to %s: tracking needs a job id", q)
	}
	if opt.Unique != 0 {
		return c.enqueueUnique(ctx, q, payload, opt)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("enqueue to %s: %w", q, err)
	}
	defer conn.Close()
	c.sendPush(conn, []BulkJob{{Queue: q, ID: opt.ID, Payload: payload}}, opt.Track, opt.Now)
	if _, err := conn.Do("EXEC"); err != nil {
		return fmt.Errorf("enqueue to %s: %w", q, err)
	}
	return c.replicated(conn, "enqueue to "+q, opt.ID)
}

// sendPush queues, on conn, the transaction that enqueues jobs: MULTI,
// with track the initial status of every job, one SADD of their queues,
// and one RPUSH per run of consecutive jobs for the same queue, so every
// job's SADD and RPUSH are applied together, in input order. The caller
// sends EXEC. Send errors show in the EXEC's reply.
func (c *Client) sendPush(conn redis.Conn, jobs []BulkJob, track bool, now time.Time) {
	seen := map[string]bool{}
	sadd := []interface{}{QueuesKey(c.ns)}
	for _, j := range jobs {
		if !seen[j.Queue] {
			seen[j.Queue] = true
			sadd = append(sadd, j.Queue)
		}
	}
	_ = conn.Send("MULTI")
	if track {
		initial := initialStatus(now)
		for _, j := range jobs {
			_ = conn.Send("SET", status.Key(c.ns, j.ID), initial)
		}
	}
	_ = conn.Send("SADD", sadd...)
	for i := 0; i < len(jobs); {
		k := i + 1
		for k < len(jobs) && jobs[k].Queue == jobs[i].Queue {
			k++
		}
		args := make([]interface{}, 0, 1+k-i)
		args = append(args, QueueKey(c.ns, jobs[i].Queue))
		for _, j := range jobs[i:k] {
			args = append(args, j.Payload)
		}
		_ = conn.Send("RPUSH", args...)
		i = k
	}
}

// BulkJob is one job of a Bulk batch: an encoded payload for a queue
// (valid names only: see ValidateQueueName), and the id its status is
// tracked under.
type BulkJob struct {
	Queue   string
	ID      string
	Payload []byte
}

// Bulk enqueues batches of jobs on one connection, each batch one
// transaction and one round trip (enqueue --stdin). Close it when done.
type Bulk struct {
	c    *Client
	conn redis.Conn
}

// Bulk returns a Bulk holding one connection of the pool.
func (c *Client) Bulk(ctx context.Context) (*Bulk, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	return &Bulk{c: c, conn: conn}, nil
}

// Close gives the connection back.
func (b *Bulk) Close() error { return b.conn.Close() }

// Enqueue enqueues jobs in one MULTI/EXEC: with track each job's
// php-resque status is created in it as well. Its errors say whether
// the batch was applied (nothing, everything, or all but the failed
// command: Redis does not roll a transaction back) for the caller to
// wrap with what the batch was. An error wrapping ErrNotAcknowledged
// (WithMinReplicas) means the whole batch was enqueued, but too few
// replicas have it yet.
func (b *Bulk) Enqueue(jobs []BulkJob, track bool) error {
	b.c.sendPush(b.conn, jobs, track, time.Time{})
	_ = b.conn.Send("EXEC")
	replies, err := redis.Values(b.conn.Do(""))
	if err != nil {
		return fmt.Errorf("%w; whether the batch was enqueued is unknown", err)
	}
	// A command refused while queueing makes EXEC fail (EXECABORT) and
	// nothing is applied; report the first error Redis gave.
	for _, r := range replies {
		if e, ok := r.(redis.Error); ok {
			return fmt.Errorf("%w; the batch was not enqueued", e)
		}
	}
	results, _ := replies[len(replies)-1].([]interface{})
	if results == nil {
		return errors.New("transaction aborted; the batch was not enqueued")
	}
	// Redis does not roll a transaction back when one of its commands
	// fails as it runs (a queue key that is not a list): say so.
	for _, r := range results {
		if e, ok := r.(redis.Error); ok {
			return fmt.Errorf("%w; the batch's other commands were applied", e)
		}
	}
	return b.c.replicated(b.conn, "enqueue batch", "")
}

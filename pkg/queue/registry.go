package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Time formats Resque's tools parse.
const (
	// StartedFormat is Ruby's Time#to_s, used for worker:<id>:started.
	StartedFormat = "2006-01-02 15:04:05 -0700"
	// RunAtFormat is the ISO 8601 UTC form Ruby writes in worker:<id>.
	RunAtFormat = "2006-01-02T15:04:05Z"
	// HeartbeatFormat is Ruby's Time#iso8601 of Redis TIME.
	HeartbeatFormat = "2006-01-02T15:04:05-07:00"
	// FailedAtFormat is Ruby Resque's failed_at.
	FailedAtFormat = "2006/01/02 15:04:05 MST"
)

// WorkerID builds Resque's worker id host:pid:queues, the queues joined
// with commas as configured ("*" stays "*").
func WorkerID(host string, pid int, queues []string) string {
	return host + ":" + strconv.Itoa(pid) + ":" + strings.Join(queues, ",")
}

// ParseWorkerID splits an id on its first two colons, as Resque does.
func ParseWorkerID(id string) (host string, pid int, queues []string, err error) {
	parts := strings.SplitN(id, ":", 3)
	if len(parts) != 3 || parts[2] == "" {
		return "", 0, nil, fmt.Errorf("parse worker id %q: want host:pid:queues", id)
	}
	pid, err = strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, nil, fmt.Errorf("parse worker id %q: bad pid: %w", id, err)
	}
	return parts[0], pid, strings.Split(parts[2], ","), nil
}

// Hostname is os.Hostname, falling back to "localhost".
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// redisTime returns the Redis server's clock, which Ruby uses for
// heartbeats so that hosts with skewed clocks agree.
func redisTime(conn redis.Conn) (time.Time, error) {
	v, err := redis.Int64s(conn.Do("TIME"))
	if err != nil {
		return time.Time{}, err
	}
	if len(v) != 2 {
		return time.Time{}, fmt.Errorf("TIME replied %v", v)
	}
	return time.Unix(v[0], v[1]*1000).UTC(), nil
}

// RegisterWorker records worker id as started at now, with a first
// heartbeat, the way Ruby's Worker#register_worker does.
func (c *Client) RegisterWorker(ctx context.Context, id string, now time.Time) error {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("register worker %s: %w", id, err)
	}
	defer conn.Close()
	beat, err := redisTime(conn)
	if err != nil {
		return fmt.Errorf("register worker %s: %w", id, err)
	}
	_ = conn.Send("MULTI")
	_ = conn.Send("HSET", HeartbeatKey(c.ns), id, beat.Format(HeartbeatFormat))
	_ = conn.Send("SADD", WorkersKey(c.ns), id)
	_ = conn.Send("SET", WorkerStartedKey(c.ns, id), now.Format(StartedFormat))
	if _, err := conn.Do("EXEC"); err != nil {
		return fmt.Errorf("register worker %s: %w", id, err)
	}
	return nil
}

// Heartbeat stamps worker id's heartbeat with the Redis clock.
func (c *Client) Heartbeat(ctx context.Context, id string) error {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("heartbeat %s: %w", id, err)
	}
	defer conn.Close()
	beat, err := redisTime(conn)
	if err != nil {
		return fmt.Errorf("heartbeat %s: %w", id, err)
	}
	if _, err := conn.Do("HSET", HeartbeatKey(c.ns), id, beat.Format(HeartbeatFormat)); err != nil {
		return fmt.Errorf("heartbeat %s: %w", id, err)
	}
	return nil
}

// UnregisterWorker removes every key of worker id but the global stats,
// as Ruby's Worker#unregister_worker does.
func (c *Client) UnregisterWorker(ctx context.Context, id string) error {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("unregister worker %s: %w", id, err)
	}
	defer conn.Close()
	_ = conn.Send("MULTI")
	_ = conn.Send("SREM", WorkersKey(c.ns), id)
	_ = conn.Send("DEL", WorkerKey(c.ns, id), WorkerStartedKey(c.ns, id))
	_ = conn.Send("HDEL", HeartbeatKey(c.ns), id)
	_ = conn.Send("DEL", WorkerStatKey(c.ns, "processed", id), WorkerStatKey(c.ns, "failed", id))
	if _, err := conn.Do("EXEC"); err != nil {
		return fmt.Errorf("unregister worker %s: %w", id, err)
	}
	return nil
}

// Working is the value of worker:<id> while a job runs.
type Working struct {
	Queue   string          `json:"queue"`
	RunAt   string          `json:"run_at"`
	Payload json.RawMessage `json:"payload"`
}

// StartJob records that worker id runs payload from queue q since runAt.
func (c *Client) StartJob(ctx context.Context, id, q string, payload []byte, runAt time.Time) error {
	v, err := marshal(Working{Queue: q, RunAt: runAt.UTC().Format(RunAtFormat), Payload: embed(payload)})
	if err != nil {
		return fmt.Errorf("start job on %s: %w", id, err)
	}
	if _, err := c.do(ctx, "SET", WorkerKey(c.ns, id), v); err != nil {
		return fmt.Errorf("start job on %s: %w", id, err)
	}
	return nil
}

// Failure is a record in the failed list. Field order is Ruby Resque's.
type Failure struct {
	FailedAt  string          `json:"failed_at"`
	Payload   json.RawMessage `json:"payload"`
	Exception string          `json:"exception"`
	Error     string          `json:"error"`
	Backtrace []string        `json:"backtrace"`
	Worker    string          `json:"worker"`
	Queue     string          `json:"queue"`
	RetriedAt string          `json:"retried_at,omitempty"`
}

// NewFailure builds a failure record for payload (kept as read) at now.
func NewFailure(now time.Time, payload []byte, exception, msg string, backtrace []string, worker, queue string) *Failure {
	if backtrace == nil {
		backtrace = []string{}
	}
	return &Failure{
		FailedAt:  now.UTC().Format(FailedAtFormat),
		Payload:   embed(payload),
		Exception: exception,
		Error:     msg,
		Backtrace: backtrace,
		Worker:    worker,
		Queue:     queue,
	}
}

// FinishJob ends worker id's current job: with f == nil it succeeded,
// otherwise f is pushed to the failed list and the failed counters go up.
// Either way the job counts as processed and worker:<id> is cleared. All
// in one transaction, in Ruby's order.
func (c *Client) FinishJob(ctx context.Context, id string, f *Failure) error {
	var rec []byte
	if f != nil {
		var err error
		if rec, err = marshal(f); err != nil {
			return fmt.Errorf("finish job on %s: %w", id, err)
		}
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("finish job on %s: %w", id, err)
	}
	defer conn.Close()
	_ = conn.Send("MULTI")
	if f != nil {
		_ = conn.Send("RPUSH", FailedKey(c.ns), rec)
		_ = conn.Send("INCRBY", StatKey(c.ns, "failed"), 1)
		_ = conn.Send("INCRBY", WorkerStatKey(c.ns, "failed", id), 1)
	}
	_ = conn.Send("DEL", WorkerKey(c.ns, id))
	_ = conn.Send("INCRBY", StatKey(c.ns, "processed"), 1)
	_ = conn.Send("INCRBY", WorkerStatKey(c.ns, "processed", id), 1)
	if _, err := conn.Do("EXEC"); err != nil {
		return fmt.Errorf("finish job on %s: %w", id, err)
	}
	return nil
}

// Workers returns the registered worker ids.
func (c *Client) Workers(ctx context.Context) ([]string, error) {
	ids, err := redis.Strings(c.do(ctx, "SMEMBERS", WorkersKey(c.ns)))
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return ids, nil
}

// Failures returns failure records start..stop (inclusive, Redis LRANGE
// indexes).
func (c *Client) Failures(ctx context.Context, start, stop int) ([]Failure, error) {
	raws, err := redis.ByteSlices(c.do(ctx, "LRANGE", FailedKey(c.ns), start, stop))
	if err != nil {
		return nil, fmt.Errorf("list failures: %w", err)
	}
	out := make([]Failure, 0, len(raws))
	for i, r := range raws {
		var f Failure
		if err := json.Unmarshal(r, &f); err != nil {
			return nil, fmt.Errorf("list failures: record %d: %w", start+i, err)
		}
		out = append(out, f)
	}
	return out, nil
}

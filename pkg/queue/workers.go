package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// ErrHoldsJob is returned by UnregisterWorker when worker:<id> still
// holds a job whose outcome was never recorded.
var ErrHoldsJob = errors.New("worker still holds a job")

// UnregisterWorker removes every key of worker id but the global stats,
// as Ruby's Worker#unregister_worker does, and drops the lease held
// under token. It refuses, with ErrHoldsJob, while worker:<id> holds a
// job (not a paused marker): deleting it would lose the job. The caller
// hands such a job to the orphan policy (worker.Pruner.PruneOne) instead.
func (c *Client) UnregisterWorker(ctx context.Context, id, token string) error {
	done, err := c.UnregisterDead(ctx, id, token, nil)
	if err != nil {
		return fmt.Errorf("unregister worker %s: %w", id, err)
	}
	if done == NotUnregistered {
		return fmt.Errorf("unregister worker %s: %w", id, ErrHoldsJob)
	}
	return nil
}

// Working is the value of worker:<id> while a job runs.
type Working struct {
	Queue   string          `json:"queue"`
	RunAt   string          `json:"run_at"`
	Payload json.RawMessage `json:"payload"`
	// Paused marks resqued's paused marker (see PausedMarker), not a job.
	Paused bool `json:"paused,omitempty"`
}

// Original is the job's payload as it was queued. The reserve script
// keeps a payload that is not JSON as a JSON string in the record (so
// the record stays JSON for Resque's tools); Original unquotes it.
func (w *Working) Original() ([]byte, error) { return recordedPayload(w.Payload) }

// Workers returns the registered worker ids.
func (c *Client) Workers(ctx context.Context) ([]string, error) {
	ids, err := redis.Strings(c.do(ctx, "SMEMBERS", WorkersKey(c.ns)))
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return ids, nil
}

package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// TryPruneLock takes the pruning lock for id for ttl, as Ruby Resque's
// SET pruning_dead_workers_in_progress <id> EX 60 NX does. It reports
// whether the lock was taken; only the holder prunes.
func (c *Client) TryPruneLock(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	v, err := c.do(ctx, "SET", PruneLockKey(c.ns), id, "EX", int(ttl/time.Second), "NX")
	if err != nil {
		return false, fmt.Errorf("take prune lock: %w", err)
	}
	return v != nil, nil
}

// ReleasePruneLock drops the pruning lock if id still holds it. Ruby
// Resque lets it expire instead, which stops every worker that starts in
// the next 60 s from pruning; releasing it keeps the lock to its purpose,
// one pruner at a time.
func (c *Client) ReleasePruneLock(ctx context.Context, id string) error {
	if _, err := c.do(ctx, "EVAL", `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`, 1, PruneLockKey(c.ns), id); err != nil {
		return fmt.Errorf("release prune lock: %w", err)
	}
	return nil
}

// ServerTime returns the Redis server's clock.
func (c *Client) ServerTime(ctx context.Context) (time.Time, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read server time: %w", err)
	}
	defer conn.Close()
	t, err := redisTime(conn)
	if err != nil {
		return time.Time{}, fmt.Errorf("read server time: %w", err)
	}
	return t, nil
}

// Heartbeats returns every worker's last heartbeat. Values that do not
// parse are returned as the zero time.
func (c *Client) Heartbeats(ctx context.Context) (map[string]time.Time, error) {
	m, err := redis.StringMap(c.do(ctx, "HGETALL", HeartbeatKey(c.ns)))
	if err != nil {
		return nil, fmt.Errorf("read heartbeats: %w", err)
	}
	out := make(map[string]time.Time, len(m))
	for id, v := range m {
		t, _ := parseHeartbeat(v)
		out[id] = t
	}
	return out, nil
}

func parseHeartbeat(v string) (time.Time, error) {
	for _, layout := range []string{HeartbeatFormat, time.RFC3339Nano, StartedFormat} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("parse heartbeat %q", v)
}

// ForgetHeartbeat deletes worker id's heartbeat, as Ruby does before it
// prunes, so a previous process with the same id is not taken for us.
func (c *Client) ForgetHeartbeat(ctx context.Context, id string) error {
	if _, err := c.do(ctx, "HDEL", HeartbeatKey(c.ns), id); err != nil {
		return fmt.Errorf("forget heartbeat %s: %w", id, err)
	}
	return nil
}

// Orphan says what becomes of a dead worker's in-flight job.
type Orphan struct {
	// Record is the worker:<id> value that was read; the cleanup only
	// happens if it is still there, so two pruners never both act.
	Record []byte
	// Failure, when set, is pushed to the failed list (Ruby's
	// Resque::PruneDeadWorkerDirtyExit).
	Failure *Failure
	// Requeue, when Failure is nil, puts Payload back at the head of
	// Queue.
	Queue   string
	Payload []byte
}

// unregisterDeadScript: with ARGV[2] empty, it only acts while
// worker:<id> holds no job (nothing, or the paused marker).
var unregisterDeadScript = redis.NewScript(9, `
local cur = redis.call('GET', KEYS[1])
if ARGV[2] == '' then
  if cur and not string.find(cur, '"paused":true', 1, true) then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
if ARGV[3] == 'fail' then
  redis.call('RPUSH', KEYS[7], ARGV[4])
  redis.call('INCRBY', KEYS[8], 1)
elseif ARGV[3] == 'requeue' then
  redis.call('LPUSH', KEYS[9], ARGV[5])
end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[3], KEYS[5], KEYS[6])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
`)

// UnregisterDead removes a dead worker's keys and deals with its
// in-flight job as o says (o nil: it had none), in one atomic step. It
// reports false, doing nothing, when worker:<id> no longer holds
// o.Record (someone else pruned it first), or, with o nil, holds a job.
func (c *Client) UnregisterDead(ctx context.Context, id string, o *Orphan) (bool, error) {
	mode, expect, rec, q, payload := "none", []byte{}, []byte{}, "", []byte{}
	if o != nil {
		expect, q, payload = o.Record, o.Queue, o.Payload
		switch {
		case o.Failure != nil:
			mode = "fail"
			var err error
			if rec, err = o.Failure.encode(); err != nil {
				return false, fmt.Errorf("unregister dead worker %s: %w", id, err)
			}
		case q != "":
			mode = "requeue"
		}
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return false, fmt.Errorf("unregister dead worker %s: %w", id, err)
	}
	defer conn.Close()
	n, err := redis.Int(unregisterDeadScript.Do(conn,
		WorkerKey(c.ns, id), WorkersKey(c.ns), WorkerStartedKey(c.ns, id), HeartbeatKey(c.ns),
		WorkerStatKey(c.ns, "processed", id), WorkerStatKey(c.ns, "failed", id),
		FailedKey(c.ns), StatKey(c.ns, "failed"), QueueKey(c.ns, q),
		id, expect, mode, rec, payload))
	if err != nil {
		return false, fmt.Errorf("unregister dead worker %s: %w", id, err)
	}
	return n == 1, nil
}

// PausedMarker is what a paused worker writes to worker:<id>, so that
// resque-web and `resqued workers` show it as paused rather than idle.
// Its payload class is "(paused)" and it carries "paused":true; pruning
// never mistakes it for a job.
func PausedMarker(queues string, since time.Time) []byte {
	b, _ := marshal(struct {
		Queue   string          `json:"queue"`
		RunAt   string          `json:"run_at"`
		Payload json.RawMessage `json:"payload"`
		Paused  bool            `json:"paused"`
	}{queues, since.UTC().Format(RunAtFormat), json.RawMessage(`{"class":"(paused)","args":[]}`), true})
	return b
}

// SetPaused writes or clears worker id's paused marker.
func (c *Client) SetPaused(ctx context.Context, id, queues string, paused bool, now time.Time) error {
	var err error
	if paused {
		_, err = c.do(ctx, "SET", WorkerKey(c.ns, id), PausedMarker(queues, now))
	} else {
		_, err = c.do(ctx, "DEL", WorkerKey(c.ns, id))
	}
	if err != nil {
		return fmt.Errorf("mark %s paused=%v: %w", id, paused, err)
	}
	return nil
}

// InFlight returns the raw worker:<id> value, or nil when there is none.
func (c *Client) InFlight(ctx context.Context, id string) ([]byte, error) {
	b, err := redis.Bytes(c.do(ctx, "GET", WorkerKey(c.ns, id)))
	if errors.Is(err, redis.ErrNil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read job of %s: %w", id, err)
	}
	return b, nil
}

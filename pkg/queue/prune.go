package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// TryPruneLock takes the pruning lock for id for ttl, as Ruby Resque's
// SET pruning_dead_workers_in_progress <id> EX 60 NX does. It reports
// whether the lock was taken (only the holder prunes) and, when it was
// not, who holds it.
func (c *Client) TryPruneLock(ctx context.Context, id string, ttl time.Duration) (bool, string, error) {
	v, err := redis.Values(c.do(ctx, "EVAL", `
if redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX') then return {1, ARGV[1]} end
return {0, redis.call('GET', KEYS[1]) or ''}`, 1, PruneLockKey(c.ns), id, int(ttl/time.Second)))
	if err != nil || len(v) != 2 {
		return false, "", fmt.Errorf("take prune lock: %w", err)
	}
	ok, _ := v[0].(int64)
	holder, _ := v[1].([]byte)
	return ok == 1, string(holder), nil
}

// TakeOverPruneLock takes the pruning lock from holder, a pruner known to
// be dead, only if holder still has it: a pruner killed while it held the
// lock would otherwise stop every other from pruning for the lock's 60 s.
func (c *Client) TakeOverPruneLock(ctx context.Context, holder, id string, ttl time.Duration) (bool, error) {
	n, err := redis.Int(c.do(ctx, "EVAL", `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1`, 1, PruneLockKey(c.ns), holder, id, int(ttl/time.Second)))
	if err != nil {
		return false, fmt.Errorf("take over prune lock from %s: %w", holder, err)
	}
	return n == 1, nil
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
	// StatusID is the job's status token, if tracked: failed (with the
	// 24 h TTL) when the job fails, waiting when it is requeued.
	StatusID string
	// MaxRedeliveries bounds how often one job is requeued from dead
	// workers: each requeue counts (RedeliveriesKey), and past the limit
	// the job fails with Poison instead. Negative means no limit.
	MaxRedeliveries int
	Poison          *Failure
}

// RedeliveriesTTL is how long a job's redelivery count is kept after its
// last redelivery.
const RedeliveriesTTL = 7 * 24 * time.Hour

// unregisterDeadScript removes a dead worker and settles its job. It
// refuses (-1) while another process holds the worker's lease (ARGV[6]
// is the caller's own token, or empty), and (0) when worker:<id> no
// longer holds ARGV[2] (with ARGV[2] empty: holds a job, not nothing or
// the paused marker). KEYS: 1 worker:<id>, 2 workers, 3 started,
// 4 heartbeat, 5 stat:processed:<id>, 6 stat:failed:<id>, 7 failed,
// 8 stat:failed, 9 the job's queue, 10 the owner lease, 11 stat:processed,
// 12 the status key, 13 the redelivery count. ARGV: 1 id, 2 record,
// 3 mode (none, fail, requeue), 4 failure record, 5 payload, 6 token,
// 7 "1" if tracked, 8 now, 9 max redeliveries (-1: no limit), 10 the
// poison failure record, 11 the count's TTL, 12 the failed status TTL.
// Returns 1, or 2 when a requeue turned into a poison failure.
var unregisterDeadScript = redis.NewScript(13, status.UpdateLua+`
local owner = redis.call('GET', KEYS[10])
if owner and owner ~= ARGV[6] then return -1 end
local cur = redis.call('GET', KEYS[1])
if ARGV[2] == '' then
  if cur then
    local ok, rec = pcall(cjson.decode, cur)
    if not (ok and type(rec) == 'table' and rec['paused'] == true) then return 0 end
  end
elseif cur ~= ARGV[2] then
  return 0
end
local mode = ARGV[3]
local rec = ARGV[4]
if mode == 'requeue' and tonumber(ARGV[9]) >= 0 then
  local n = redis.call('INCR', KEYS[13])
  redis.call('EXPIRE', KEYS[13], ARGV[11])
  if n > tonumber(ARGV[9]) then
    mode, rec = 'poison', ARGV[10]
    redis.call('DEL', KEYS[13])
  end
end
if mode == 'fail' or mode == 'poison' then
  redis.call('RPUSH', KEYS[7], rec)
  redis.call('INCRBY', KEYS[8], 1)
  redis.call('INCRBY', KEYS[11], 1)
  if ARGV[7] == '1' then resqued_status(KEYS[12], 3, ARGV[8], ARGV[12]) end
elseif mode == 'requeue' then
  redis.call('LPUSH', KEYS[9], ARGV[5])
  if ARGV[7] == '1' then resqued_status(KEYS[12], 1, ARGV[8], 0) end
end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[3], KEYS[5], KEYS[6], KEYS[10])
redis.call('HDEL', KEYS[4], ARGV[1])
if mode == 'poison' then return 2 end
return 1
`)

// Unregistered says what UnregisterDead did.
type Unregistered int

const (
	// NotUnregistered: nothing was done, the worker:<id> value was not
	// the one expected (someone else pruned it first, or, with no
	// Orphan, it holds a job).
	NotUnregistered Unregistered = iota
	// UnregisteredOK: the worker is gone and its job dealt with as asked.
	UnregisteredOK
	// UnregisteredPoison: the job was to be requeued but had been
	// redelivered MaxRedeliveries times already, so it failed as Poison.
	UnregisteredPoison
)

// UnregisterDead removes a dead worker's keys and deals with its
// in-flight job as o says (o nil: it had none), in one atomic step. token
// is the lease token the caller acts under: the dead worker's own (a
// supervisor's child, or this process's previous self), or "" to act
// only while nobody holds the id's lease. It returns ErrIDInUse, doing
// nothing, while another process holds that lease.
func (c *Client) UnregisterDead(ctx context.Context, id, token string, o *Orphan) (Unregistered, error) {
	mode, expect, rec, q, payload, sid, maxRe, poison := "none", []byte{}, []byte{}, "", []byte{}, "", -1, []byte{}
	if o != nil {
		expect, q, payload, sid, maxRe = o.Record, o.Queue, o.Payload, o.StatusID, o.MaxRedeliveries
		var err error
		switch {
		case o.Failure != nil:
			mode = "fail"
			if rec, err = o.Failure.encode(); err != nil {
				return NotUnregistered, fmt.Errorf("unregister dead worker %s: %w", id, err)
			}
		case q != "":
			mode = "requeue"
			if o.Poison != nil {
				if poison, err = o.Poison.encode(); err != nil {
					return NotUnregistered, fmt.Errorf("unregister dead worker %s: %w", id, err)
				}
			} else {
				maxRe = -1
			}
		}
	}
	tracked := "0"
	if sid != "" {
		tracked = "1"
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return NotUnregistered, fmt.Errorf("unregister dead worker %s: %w", id, err)
	}
	defer conn.Close()
	n, err := redis.Int(unregisterDeadScript.Do(conn,
		WorkerKey(c.ns, id), WorkersKey(c.ns), WorkerStartedKey(c.ns, id), HeartbeatKey(c.ns),
		WorkerStatKey(c.ns, "processed", id), WorkerStatKey(c.ns, "failed", id),
		FailedKey(c.ns), StatKey(c.ns, "failed"), QueueKey(c.ns, q), OwnerKey(c.ns, id),
		StatKey(c.ns, "processed"), status.Key(c.ns, sid), RedeliveriesKey(c.ns, payloadDigest(payload)),
		id, expect, mode, rec, payload, token, tracked, time.Now().Unix(), maxRe, poison,
		int(RedeliveriesTTL/time.Second), status.TTLFor(status.Failed)))
	if err != nil {
		return NotUnregistered, fmt.Errorf("unregister dead worker %s: %w", id, err)
	}
	if n < 0 {
		return NotUnregistered, fmt.Errorf("unregister dead worker %s: %w", id, ErrIDInUse)
	}
	return Unregistered(n), nil
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

// setPausedScript writes (ARGV[1] "1") or clears the paused marker ARGV[2]
// in worker:<id>, only while that key holds nothing or a paused marker:
// it never replaces a job. Returns 0 when a job is there.
var setPausedScript = redis.NewScript(1, `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, rec = pcall(cjson.decode, cur)
  if not (ok and type(rec) == 'table' and rec['paused'] == true) then return 0 end
end
if ARGV[1] == '1' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('DEL', KEYS[1]) end
return 1
`)

// SetPaused writes or clears worker id's paused marker. It returns
// ErrHoldsJob, changing nothing, when worker:<id> holds a job (one taken
// by a Reserve whose reply was lost): that job must run first.
func (c *Client) SetPaused(ctx context.Context, id, queues string, paused bool, now time.Time) error {
	set, marker := "0", []byte{}
	if paused {
		set, marker = "1", PausedMarker(queues, now)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("mark %s paused=%v: %w", id, paused, err)
	}
	defer conn.Close()
	n, err := redis.Int(setPausedScript.Do(conn, WorkerKey(c.ns, id), set, marker))
	if err != nil {
		return fmt.Errorf("mark %s paused=%v: %w", id, paused, err)
	}
	if n == 0 {
		return fmt.Errorf("mark %s paused=%v: %w", id, paused, ErrHoldsJob)
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

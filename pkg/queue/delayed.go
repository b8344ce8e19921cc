package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// The delayed set is resque-scheduler's (lib/resque/scheduler/delaying_extensions.rb),
// byte for byte: DelayedScheduleKey, DelayedKey and TimestampsKey. The
// reads and writes are here; pkg/delayed decides when due items move.

// delayScript stores a delayed item, as resque-scheduler's delayed_push:
// ARGV[1] RPUSHed to KEYS[1] delayed:<ts>, ARGV[2] TimestampsEntry(ts)
// added to KEYS[2] timestamps:<item>, ts ARGV[3] to KEYS[3]
// delayed_queue_schedule. With ARGV[4] == "1" the job is tracked: KEYS[4],
// its status, is set to ARGV[5], and its token ARGV[6] goes into KEYS[5],
// the delayed-status hash, with value ARGV[7], expiring ARGV[8] seconds
// on (never sooner than it did), so a worker can find the token once a
// Ruby scheduler moved the item without its "id"; KEYS[6]
// (DelayedStatusAnyKey) lives as long.
var delayScript = redis.NewScript(6, `
if ARGV[4] == '1' then
  redis.call('SET', KEYS[4], ARGV[5])
  redis.call('HSET', KEYS[5], ARGV[6], ARGV[7])
  if redis.call('TTL', KEYS[5]) < tonumber(ARGV[8]) then redis.call('EXPIRE', KEYS[5], ARGV[8]) end
  if redis.call('TTL', KEYS[6]) < tonumber(ARGV[8]) then redis.call('SET', KEYS[6], '1', 'EX', ARGV[8]) end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[3])
return 1
`)

// Delay stores payload to be pushed onto queue q at time at, in one
// atomic script, as its DelayedItem. resque-scheduler keeps whole
// seconds: at is rounded up, so a job never runs early. A payload that
// has a "queue" field of its own is refused.
// With opt.Track the job's php-resque status is created in the same
// step, and its token is recorded in the delayed-status index
// (DelayedStatusKey). An error wrapping ErrNotAcknowledged
// (WithMinReplicas) means the job was stored, but too few replicas have
// it yet.
func (c *Client) Delay(ctx context.Context, at time.Time, q string, payload []byte, opt EnqueueOptions) error {
	if err := ValidateQueueName(q); err != nil {
		return err
	}
	job, err := Decode(q, payload)
	if err != nil {
		return fmt.Errorf("delay job for %s: %w", q, err)
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(payload, &fields) // Decode checked it
	if _, ok := fields["queue"]; ok {
		return fmt.Errorf("delay job for %s: payload already has a \"queue\" field", q)
	}
	item, err := DelayedItem(q, payload)
	if err != nil {
		return fmt.Errorf("delay job for %s: %w", q, err)
	}
	ts := at.Unix()
	if at.Nanosecond() != 0 {
		ts++
	}
	if opt.Track && opt.ID == "" {
		return fmt.Errorf("delay job for %s: tracking needs a job id", q)
	}
	tracked := "0"
	if opt.Track {
		tracked = "1"
	}
	ttl := max(ts-time.Now().Unix(), 0) + int64(DelayedStatusMargin/time.Second)
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("delay job for %s: %w", q, err)
	}
	defer conn.Close()
	if _, err := delayScript.Do(conn,
		DelayedKey(c.ns, ts), TimestampsKey(c.ns, string(item)), DelayedScheduleKey(c.ns),
		status.Key(c.ns, opt.ID), DelayedStatusKey(c.ns, DelayedStatusDigest(q, job.Class, job.Args)),
		DelayedStatusAnyKey(c.ns),
		item, TimestampsEntry(ts), ts, tracked, initialStatus(opt.Now), opt.ID,
		DelayedStatusValue(ts, item), ttl); err != nil {
		return fmt.Errorf("delay job for %s: %w", q, err)
	}
	return c.replicated(conn, "delay job for "+q, opt.ID)
}

// moveScript moves up to ARGV[5] items of one timestamp onto their
// queues. KEYS[1] delayed:<ts>, KEYS[2] delayed_queue_schedule, KEYS[3]
// queues. ARGV[1] the timestamp as the schedule holds it, ARGV[2]
// TimestampsEntry(ts), ARGV[3] QueuePrefix, ARGV[4] TimestampsPrefix,
// ARGV[5] the batch size, ARGV[6] the characters a queue name may not
// hold (queueNameForbidden). The queue and timestamps keys are built
// from the prefixes because the script learns the items, and their
// queues, only as it pops them. An item whose queue is not a usable name
// (not JSON, no "queue") is put back at the tail of its list, for an
// operator. Returns {moved, kept, left, withID}: left is the list's
// length afterwards, withID the queue and payload of each moved item
// that has a string "id" (queue, payload, queue, payload, ...), whose
// delayed-status entries the caller then removes.
//
// The pushed payload is the item without its "queue" field. It is cut
// out of the bytes, not re-encoded (cjson would reorder keys, turn [] into
// {} and round big numbers); an item whose "queue" is not last is pushed
// unchanged (Resque ignores the extra field).
var moveScript = redis.NewScript(3, `
local ts, entry, qprefix, tprefix, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local forbidden = '[' .. ARGV[6] .. ']'
local moved, kept, withID = 0, {}, {}
for i = 1, n do
  local item = redis.call('LPOP', KEYS[1])
  if not item then break end
  redis.call('SREM', tprefix .. item, entry)
  local ok, p = pcall(cjson.decode, item)
  local q = ok and type(p) == 'table' and p['queue']
  if type(q) == 'string' and q ~= '' and not string.find(q, forbidden) then
    local payload = item
    local at, from = nil, 1
    while true do
      local s = string.find(item, ',"queue":', from, true)
      if not s then break end
      at, from = s, s + 1
    end
    if at and string.sub(item, -1) == '}' then
      local ok2, v = pcall(cjson.decode, string.sub(item, at + 9, -2))
      if ok2 and v == q then payload = string.sub(item, 1, at - 1) .. '}' end
    end
    redis.call('SADD', KEYS[3], q)
    redis.call('RPUSH', qprefix .. q, payload)
    moved = moved + 1
    if type(p['id']) == 'string' and p['id'] ~= '' then
      table.insert(withID, q)
      table.insert(withID, payload)
    end
  else
    table.insert(kept, item)
  end
end
for _, item in ipairs(kept) do
  redis.call('RPUSH', KEYS[1], item)
  redis.call('SADD', tprefix .. item, entry)
end
local left = redis.call('LLEN', KEYS[1])
if left == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ts)
end
return {moved, #kept, left, withID}
`)

// ErrNotTimestamp is returned by MoveDelayed for a member of the delayed
// schedule that is not a Unix time: not resque-scheduler's.
var ErrNotTimestamp = errors.New("not a delayed timestamp")

// DueTimestamps returns up to n timestamps of the delayed schedule due at
// or before now, soonest first, after skipping the first skip, as the
// schedule holds them (for MoveDelayed).
func (c *Client) DueTimestamps(ctx context.Context, now time.Time, skip, n int) ([]string, error) {
	tss, err := redis.Strings(c.do(ctx, "ZRANGEBYSCORE", DelayedScheduleKey(c.ns), "-inf", now.Unix(), "LIMIT", skip, n))
	if err != nil {
		return nil, fmt.Errorf("read due delayed timestamps: %w", err)
	}
	return tss, nil
}

// DelayedBatch is what one MoveDelayed call did.
type DelayedBatch struct {
	// Key is the timestamp's DelayedKey.
	Key string
	// Moved items went onto their queues; Kept ones name no usable
	// queue and stay; Left is how many the list holds afterwards.
	Moved, Kept, Left int
}

// MoveDelayed moves up to n items of timestamp ts (as DueTimestamps
// returned it) onto their queues (SADD queues, RPUSH queue:<q>), in one
// Lua script, so schedulers running at once never move an item twice.
// When the list empties, ts leaves the schedule in the same step. It
// returns ErrNotTimestamp when ts is not a Unix time.
func (c *Client) MoveDelayed(ctx context.Context, ts string, n int) (DelayedBatch, error) {
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return DelayedBatch{}, fmt.Errorf("move delayed jobs of %q: %w", ts, ErrNotTimestamp)
	}
	b := DelayedBatch{Key: DelayedKey(c.ns, t)}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return b, fmt.Errorf("move delayed jobs of %s: %w", ts, err)
	}
	defer conn.Close()
	reply, err := redis.Values(moveScript.Do(conn, b.Key, DelayedScheduleKey(c.ns), QueuesKey(c.ns),
		ts, TimestampsEntry(t), QueuePrefix(c.ns), TimestampsPrefix(c.ns), n, queueNameForbidden))
	if err != nil || len(reply) != 4 {
		return b, fmt.Errorf("move delayed jobs of %s: %v", ts, orUnexpected(err))
	}
	r, err := redis.Ints(reply[:3], nil)
	if err != nil {
		return b, fmt.Errorf("move delayed jobs of %s: %w", ts, err)
	}
	b.Moved, b.Kept, b.Left = r[0], r[1], r[2]
	if err := c.forgetTokens(conn, reply[3]); err != nil {
		return b, fmt.Errorf("move delayed jobs of %s: %w", ts, err)
	}
	c.reportReplicated(conn, "move delayed jobs of", ts)
	return b, nil
}

// forgetTokens removes the delayed-status entries of moved jobs that kept
// their "id" (withID: queue, payload, ...): their worker sees the token,
// so no job without one may take it. It runs just after the move, not in
// the same script, because the entries' keys depend on items the script
// popped; in between, an identical job moved by Ruby could take such a
// token (docs/scheduling.md, "What survives a Ruby scheduler").
func (c *Client) forgetTokens(conn redis.Conn, withID interface{}) error {
	pairs, err := redis.ByteSlices(withID, nil)
	if err != nil || len(pairs) == 0 {
		return nil
	}
	n := 0
	for i := 0; i+1 < len(pairs); i += 2 {
		j, err := Decode(string(pairs[i]), pairs[i+1])
		if err != nil || j.ID == "" {
			continue
		}
		_ = conn.Send("HDEL", DelayedStatusKey(c.ns, DelayedStatusDigest(j.Queue, j.Class, j.Args)), j.ID)
		n++
	}
	if n == 0 {
		return nil
	}
	if _, err := conn.Do(""); err != nil {
		return fmt.Errorf("forget status tokens: %w", err)
	}
	return nil
}

func orUnexpected(err error) error {
	if err != nil {
		return err
	}
	return errors.New("unexpected reply")
}

// DelayedJob is one delayed item, as ListDelayed returns it.
type DelayedJob struct {
	At    time.Time
	Queue string
	Class string
	Args  json.RawMessage
	// ID is the item's "id", if any.
	ID string
	// Item is the entry exactly as stored.
	Item []byte
}

// ListDelayed returns up to limit delayed items (all when limit <= 0),
// soonest first.
func (c *Client) ListDelayed(ctx context.Context, limit int) ([]DelayedJob, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list delayed jobs: %w", err)
	}
	defer conn.Close()
	tss, err := redis.Int64s(conn.Do("ZRANGE", DelayedScheduleKey(c.ns), 0, -1))
	if err != nil {
		return nil, fmt.Errorf("list delayed jobs: %w", err)
	}
	var out []DelayedJob
	for _, ts := range tss {
		end := -1
		if limit > 0 {
			end = limit - len(out) - 1
		}
		items, err := redis.ByteSlices(conn.Do("LRANGE", DelayedKey(c.ns, ts), 0, end))
		if err != nil {
			return nil, fmt.Errorf("list delayed jobs at %d: %w", ts, err)
		}
		for _, it := range items {
			d := DelayedJob{At: time.Unix(ts, 0).UTC(), Item: it}
			var q struct {
				Queue string `json:"queue"`
			}
			_ = json.Unmarshal(it, &q)
			d.Queue = q.Queue
			if j, err := Decode(q.Queue, it); err == nil {
				d.Class, d.Args, d.ID = j.Class, j.Args, j.ID
			}
			out = append(out, d)
		}
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

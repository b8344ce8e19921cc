package delayed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/outage"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// Interval is how often Run looks for due jobs.
const Interval = 250 * time.Millisecond

// batchSize bounds the items one script call moves, so a huge timestamp
// does not block Redis for long; MoveDue calls it again until done.
const batchSize = 500

// timestampsPerPass bounds the due timestamps MoveDue reads at a time.
const timestampsPerPass = 100

// Scheduler writes delayed jobs and moves them onto their queues when due.
type Scheduler struct {
	pool *redis.Pool
	ns   string
	log  hclog.Logger
}

// New returns a Scheduler for namespace ns. A nil logger logs nothing.
func New(pool *redis.Pool, ns string, logger hclog.Logger) *Scheduler {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Scheduler{pool: pool, ns: ns, log: logger}
}

// Item builds resque-scheduler's item from a Resque payload
// {"class","args",...}: the payload's fields in their order, then
// "queue". For {"class","args"} it is exactly what Ruby's
// job_to_hash_with_queue encodes.
func Item(q string, payload []byte) ([]byte, error) {
	if _, err := queue.Decode(q, payload); err != nil {
		return nil, err
	}
	p := bytes.TrimSpace(payload)
	body := bytes.TrimSpace(p[1 : len(p)-1]) // a JSON object: {...}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(p, &fields)
	if _, ok := fields["queue"]; ok {
		return nil, errors.New("payload already has a \"queue\" field")
	}
	qj, _ := json.Marshal(q)
	var b bytes.Buffer
	b.WriteByte('{')
	b.Write(body)
	b.WriteString(`,"queue":`)
	b.Write(qj)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// delayScript stores a delayed item, as resque-scheduler's delayed_push:
// ARGV[1] RPUSHed to KEYS[1] delayed:<ts>, ARGV[2] "delayed:<ts>" added to
// KEYS[2] timestamps:<item>, ts ARGV[3] to KEYS[3] delayed_queue_schedule.
// With ARGV[4] == "1" the job is tracked: KEYS[4], its status, is set to
// ARGV[5], and its token ARGV[6] goes into KEYS[5], the delayed-status
// hash, with value ARGV[7], expiring ARGV[8] seconds on (never sooner than
// it did), so a worker can find the token once a Ruby scheduler moved the
// item without its "id"; KEYS[6] (DelayedStatusAnyKey) lives as long.
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
// atomic script. resque-scheduler keeps whole seconds: at is rounded up,
// so a job never runs early.
// With opt.Track the job's php-resque status is created in the same
// step, and its token is recorded in the delayed-status index
// (queue.DelayedStatusKey).
func (s *Scheduler) Delay(ctx context.Context, at time.Time, q string, payload []byte, opt ...queue.EnqueueOptions) error {
	if err := queue.ValidateQueueName(q); err != nil {
		return err
	}
	item, err := Item(q, payload)
	if err != nil {
		return fmt.Errorf("delay job for %s: %w", q, err)
	}
	job, _ := queue.Decode(q, payload) // Item checked it
	ts := at.Unix()
	if at.Nanosecond() != 0 {
		ts++
	}
	var o queue.EnqueueOptions
	for _, x := range opt {
		if x.Track {
			o = x
		}
	}
	if o.Track && o.ID == "" {
		return fmt.Errorf("delay job for %s: tracking needs a job id", q)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	tracked := "0"
	if o.Track {
		tracked = "1"
	}
	ttl := max(ts-time.Now().Unix(), 0) + int64(queue.DelayedStatusMargin/time.Second)
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("delay job for %s: %w", q, err)
	}
	defer conn.Close()
	if _, err := delayScript.Do(conn,
		queue.DelayedKey(s.ns, ts), queue.TimestampsKey(s.ns, string(item)), queue.DelayedScheduleKey(s.ns),
		status.Key(s.ns, o.ID), queue.DelayedStatusKey(s.ns, queue.DelayedStatusDigest(q, job.Class, job.Args)),
		queue.DelayedStatusAnyKey(s.ns),
		item, "delayed:"+strconv.FormatInt(ts, 10), ts, tracked, status.Initial(now), o.ID,
		queue.DelayedStatusValue(ts, item), ttl); err != nil {
		return fmt.Errorf("delay job for %s: %w", q, err)
	}
	return nil
}

// moveScript moves up to ARGV[3] items of one timestamp onto their queues.
// KEYS[1] delayed:<ts>, KEYS[2] delayed_queue_schedule, KEYS[3] queues.
// ARGV[1] the timestamp, ARGV[2] the namespace with its colon, ARGV[3]
// the batch size. An item whose queue is not a usable name (not JSON, no
// "queue") is put back at the tail of its list, for an operator. Returns
// {moved, kept, left, withID}: left is the list's length afterwards,
// withID the queue and payload of each moved item that has a string "id"
// (queue, payload, queue, payload, ...), whose delayed-status entries the
// caller then removes.
//
// The pushed payload is the item without its "queue" field. It is cut
// out of the bytes, not re-encoded (cjson would reorder keys, turn [] into
// {} and round big numbers); an item whose "queue" is not last is pushed
// unchanged (Resque ignores the extra field).
var moveScript = redis.NewScript(3, `
local ts, prefix, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local moved, kept, withID = 0, {}, {}
for i = 1, n do
  local item = redis.call('LPOP', KEYS[1])
  if not item then break end
  redis.call('SREM', prefix .. 'timestamps:' .. item, 'delayed:' .. ts)
  local ok, p = pcall(cjson.decode, item)
  local q = ok and type(p) == 'table' and p['queue']
  if type(q) == 'string' and q ~= '' and not string.find(q, '[,: \t\r\n]') then
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
    redis.call('RPUSH', prefix .. 'queue:' .. q, payload)
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
  redis.call('SADD', prefix .. 'timestamps:' .. item, 'delayed:' .. ts)
end
local left = redis.call('LLEN', KEYS[1])
if left == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ts)
end
return {moved, #kept, left, withID}
`)

// MoveDue moves every delayed item due at or before now onto its queue
// (SADD queues, RPUSH queue:<q>) and returns how many it moved. Each
// batch is one Lua script, so schedulers running at once never move an
// item twice. Items that name no usable queue stay where they are.
func (s *Scheduler) MoveDue(ctx context.Context, now time.Time) (int, error) {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return 0, fmt.Errorf("move delayed jobs: %w", err)
	}
	defer conn.Close()
	total := 0
	stuck := map[string]bool{} // timestamps holding only unmovable items
	for ctx.Err() == nil {
		tss, err := redis.Strings(conn.Do("ZRANGEBYSCORE", queue.DelayedScheduleKey(s.ns), "-inf", now.Unix(), "LIMIT", len(stuck), timestampsPerPass))
		if err != nil {
			return total, fmt.Errorf("move delayed jobs: %w", err)
		}
		if len(tss) == 0 {
			return total, nil
		}
		for _, t := range tss {
			if stuck[t] {
				continue
			}
			ts, err := strconv.ParseInt(t, 10, 64)
			if err != nil {
				// Not resque-scheduler's; skip it rather than loop.
				stuck[t] = true
				continue
			}
			for {
				reply, err := redis.Values(moveScript.Do(conn, queue.DelayedKey(s.ns, ts), queue.DelayedScheduleKey(s.ns), queue.QueuesKey(s.ns), t, s.ns+":", batchSize))
				if err != nil || len(reply) != 4 {
					return total, fmt.Errorf("move delayed jobs of %s: %v", t, orUnexpected(err))
				}
				r, err := redis.Int64s(reply[:3], nil)
				if err != nil {
					return total, fmt.Errorf("move delayed jobs of %s: %w", t, err)
				}
				if err := s.forgetTokens(conn, reply[3]); err != nil {
					return total, fmt.Errorf("move delayed jobs of %s: %w", t, err)
				}
				total += int(r[0])
				if r[2] == 0 {
					break
				}
				if r[0] == 0 {
					stuck[t] = true
					s.log.Warn("delayed items name no queue; left in place", "key", queue.DelayedKey(s.ns, ts), "count", r[1])
					break
				}
			}
		}
		if len(tss) < timestampsPerPass {
			return total, nil
		}
	}
	return total, ctx.Err()
}

// forgetTokens removes the delayed-status entries of moved jobs that kept
// their "id" (withID: queue, payload, ...): their worker sees the token,
// so no job without one may take it. It runs just after the move, not in
// the same script, because the entries' keys depend on items the script
// popped; in between, an identical job moved by Ruby could take such a
// token (docs/scheduling.md, "What survives a Ruby scheduler").
func (s *Scheduler) forgetTokens(conn redis.Conn, withID interface{}) error {
	pairs, err := redis.ByteSlices(withID, nil)
	if err != nil || len(pairs) == 0 {
		return nil
	}
	n := 0
	for i := 0; i+1 < len(pairs); i += 2 {
		j, err := queue.Decode(string(pairs[i]), pairs[i+1])
		if err != nil || j.ID == "" {
			continue
		}
		_ = conn.Send("HDEL", queue.DelayedStatusKey(s.ns, queue.DelayedStatusDigest(j.Queue, j.Class, j.Args)), j.ID)
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

// Run calls MoveDue every Interval until ctx is done, so a due job waits
// at most about Interval plus the second resque-scheduler's timestamps
// are rounded to. While Redis fails it backs off (100ms doubling to 1s)
// and logs one line when the outage starts and one when it ends
// (internal/outage), however many attempts it makes in between.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(Interval)
	defer t.Stop()
	backoff := outage.NewBackoff()
	for {
		n, err := s.MoveDue(ctx, time.Now())
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			backoff.Fail(s.log, err)
			backoff.Wait(ctx.Done())
			continue
		}
		backoff.Reset(s.log)
		if n > 0 {
			s.log.Info("moved delayed jobs", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Delayed is one delayed item, as List returns it.
type Delayed struct {
	At    time.Time
	Queue string
	Class string
	Args  json.RawMessage
	// ID is the item's "id", if any.
	ID string
	// Item is the entry exactly as stored.
	Item []byte
}

// List returns up to limit delayed items (all when limit <= 0), soonest
// first.
func (s *Scheduler) List(ctx context.Context, limit int) ([]Delayed, error) {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list delayed jobs: %w", err)
	}
	defer conn.Close()
	tss, err := redis.Int64s(conn.Do("ZRANGE", queue.DelayedScheduleKey(s.ns), 0, -1))
	if err != nil {
		return nil, fmt.Errorf("list delayed jobs: %w", err)
	}
	var out []Delayed
	for _, ts := range tss {
		end := -1
		if limit > 0 {
			end = limit - len(out) - 1
		}
		items, err := redis.ByteSlices(conn.Do("LRANGE", queue.DelayedKey(s.ns, ts), 0, end))
		if err != nil {
			return nil, fmt.Errorf("list delayed jobs at %d: %w", ts, err)
		}
		for _, it := range items {
			d := Delayed{At: time.Unix(ts, 0).UTC(), Item: it}
			var q struct {
				Queue string `json:"queue"`
			}
			_ = json.Unmarshal(it, &q)
			d.Queue = q.Queue
			if j, err := queue.Decode(q.Queue, it); err == nil {
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

package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
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
// (DelayedStatusAnyKey) lives as long. KEYS[7] is SchedulerWakeKey and
// ARGV[9] now (Unix seconds), for wakeLua.
var delayScript = redis.NewScript(7, wakeLua+delayLua)

// delayLua is delayScript's body, which delayUniqueScript shares.
const delayLua = `
if ARGV[4] == '1' then
  redis.call('SET', KEYS[4], ARGV[5])
  redis.call('HSET', KEYS[5], ARGV[6], ARGV[7])
  if redis.call('TTL', KEYS[5]) < tonumber(ARGV[8]) then redis.call('EXPIRE', KEYS[5], ARGV[8]) end
  if redis.call('TTL', KEYS[6]) < tonumber(ARGV[8]) then redis.call('SET', KEYS[6], '1', 'EX', ARGV[8]) end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
resqued_wake(KEYS[3], KEYS[7], ARGV[3], ARGV[9])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[3])
return 1
`

// wakeLua defines resqued_wake(schedule, wake, ts, now), which a script
// that adds timestamp ts to the delayed schedule calls just before its
// ZADD. When ts is already due (ts <= now, Unix seconds) or earlier than
// every timestamp still to come (score > now), the poller
// (pkg/delayed) may be asleep past it, so it pushes a token onto the
// wake list (SchedulerWakeKey), which the poller BLPOPs (WaitWake). One
// token is enough for any number of writes: the list never holds more
// than one. A later ts needs none: the poller wakes by the earlier one,
// or its poll, and reads the schedule again. The token expires after a
// minute, so a namespace with no resqued poller keeps no stray key for
// long.
const wakeLua = `
local function resqued_wake(schedule, wake, ts, now)
  local t = tonumber(ts)
  if t > tonumber(now) then
    local first = redis.call('ZRANGEBYSCORE', schedule, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if first[2] and tonumber(first[2]) <= t then return end
  end
  if redis.call('LLEN', wake) == 0 then redis.call('RPUSH', wake, '1') end
  redis.call('EXPIRE', wake, 60)
end
`

// Delay stores payload to be pushed onto queue q at time at, in one
// atomic script, as its DelayedItem. resque-scheduler keeps whole
// seconds: at is rounded up, so a job never runs early. A payload that
// has a "queue" field of its own is refused.
// With opt.Track the job's php-resque status is created in the same
// step, and its token is recorded in the delayed-status index
// (DelayedStatusKey). An error wrapping ErrNotAcknowledged
// (WithMinReplicas) means the job was stored, but too few replicas have
// it yet. With opt.Unique the job is stored only if it takes its
// unique lock (EnqueueOptions.Unique), which then lasts until the job
// is due plus opt.Unique.
func (c *Client) Delay(ctx context.Context, at time.Time, q string, payload []byte, opt EnqueueOptions) error {
	if err := ValidateQueueName(q); err != nil {
		return err
	}
	var digest string
	if opt.Unique != 0 {
		var err error
		if digest, payload, err = uniqueArgs(q, payload, opt); err != nil {
			return fmt.Errorf("delay job for %s: %w", q, err)
		}
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
	args := []interface{}{
		DelayedKey(c.ns, ts), TimestampsKey(c.ns, string(item)), DelayedScheduleKey(c.ns),
		status.Key(c.ns, opt.ID), DelayedStatusKey(c.ns, DelayedStatusDigest(q, job.Class, job.Args)),
		DelayedStatusAnyKey(c.ns), SchedulerWakeKey(c.ns),
		item, TimestampsEntry(ts), ts, tracked, initialStatus(opt.Now), opt.ID,
		DelayedStatusValue(ts, item), ttl, time.Now().Unix()}
	if opt.Unique != 0 {
		return c.delayUnique(conn, q, digest, ts, opt, args)
	}
	if _, err := delayScript.Do(conn, args...); err != nil {
		return fmt.Errorf("delay job for %s: %w", q, err)
	}
	return c.replicated(conn, "delay job for "+q, opt.ID)
}

// moveItemScript moves one delayed item ARGV[3] of timestamp ARGV[1]
// onto queue ARGV[4], or, with ARGV[4] empty (the item names no usable
// queue), puts it back at the tail of its list, for an operator. KEYS[1]
// delayed:<ts>, KEYS[2] delayed_queue_schedule, KEYS[3] queues, KEYS[4]
// queue:<q> (any key of the namespace when keeping), KEYS[5] the item's
// timestamps set; ARGV[2] is TimestampsEntry(ts). The caller read the
// item first (MoveDelayed): the script acts only if LREM still finds it,
// so of schedulers racing for one item exactly one moves it. When the
// list empties, the timestamp leaves the schedule. Returns {state, left,
// payload}: state 1 moved, 2 kept, 0 gone (another scheduler took it);
// left the list's length afterwards; payload what was pushed.
//
// The pushed payload is the item without its "queue" field. It is cut
// out of the bytes, not re-encoded (cjson would reorder keys, turn [] into
// {} and round big numbers); an item whose "queue" is not last is pushed
// unchanged (Resque ignores the extra field).
//
// One script per item, rather than one per batch that pops items and
// pushes each where it names, because a script may touch only the keys
// it declares (Redis Cluster, Valkey, DragonflyDB), and an item's queue
// and timestamps set are known only once it is read.
var moveItemScript = redis.NewScript(5, `
local ts, entry, item, q = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('LREM', KEYS[1], 1, item) ~= 1 then return {0, redis.call('LLEN', KEYS[1]), ''} end
local state, payload = 2, ''
if q == '' then
  redis.call('RPUSH', KEYS[1], item)
else
  redis.call('SREM', KEYS[5], entry)
  payload = item
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
  redis.call('RPUSH', KEYS[4], payload)
  state = 1
end
local left = redis.call('LLEN', KEYS[1])
if left == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ts)
end
return {state, left, payload}
`)

// dropEmptyScript takes timestamp ARGV[1] off the schedule KEYS[2] when
// its list KEYS[1] is empty (a scheduler that moved the last item left
// it there, or the list was emptied by hand).
var dropEmptyScript = redis.NewScript(2, `
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 0
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

// ScheduleHead reads the delayed schedule from rank skip on, soonest
// first, in one command (ZRANGE ... WITHSCORES): due are up to n
// timestamps due at or before now, as the schedule holds them (for
// MoveDelayed); next is the time of the first one not yet due, when the
// read reached it (zero otherwise: none, or more than n are due). A
// poller sleeps until next, so one read per pass tells it both what to
// move and when to look again.
func (c *Client) ScheduleHead(ctx context.Context, now time.Time, skip, n int) (due []string, next time.Time, err error) {
	vs, err := redis.Strings(c.do(ctx, "ZRANGE", DelayedScheduleKey(c.ns), skip, skip+n, "WITHSCORES"))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read delayed schedule: %w", err)
	}
	cut := now.Unix()
	for i := 0; i+1 < len(vs); i += 2 {
		score, err := strconv.ParseFloat(vs[i+1], 64)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("read delayed schedule: score %q of %q: %w", vs[i+1], vs[i], err)
		}
		if score > float64(cut) {
			return due, time.Unix(int64(math.Ceil(score)), 0), nil
		}
		if len(due) < n {
			due = append(due, vs[i])
		}
	}
	return due, time.Time{}, nil
}

// Waker waits for the delayed-job poller's wake tokens
// (SchedulerWakeKey), on a connection of its own. It is used by one
// goroutine at a time; Close it when done.
type Waker struct {
	c        *Client
	conn     redis.Conn
	id       int64 // CLIENT ID of conn; 0 when the server has none
	intSecs  bool  // the server takes only whole seconds (before Redis 6)
	noUnlock bool  // no CLIENT ID/UNBLOCK (before Redis 5): wait at most 1s

	// key is the list waited on, what the wait as errors name it; got
	// is the element the last Wait took.
	key, what string
	got       []byte
}

// Waker returns a Waker for c's namespace.
func (c *Client) Waker() *Waker {
	return &Waker{c: c, key: SchedulerWakeKey(c.ns), what: "wait for delayed jobs"}
}

// Close releases the Waker's connection.
func (w *Waker) Close() error {
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// Wait blocks until a wake token arrives (woken true; the token is
// taken, so of several pollers one wakes), timeout passes or ctx is
// done, with one BLPOP. Cancelling ctx unblocks it with CLIENT UNBLOCK
// from another connection, as Fetcher.Wait does, so an idle poller costs
// Redis one command per timeout and still stops at once. An error
// (UNBLOCKED or READONLY during a failover, a broken connection) drops
// the connection; the next Wait dials another through the pool.
func (w *Waker) Wait(ctx context.Context, timeout time.Duration) (woken bool, err error) {
	if ctx.Err() != nil {
		return false, nil
	}
	if w.conn != nil && w.conn.Err() != nil {
		w.Close()
	}
	if w.conn == nil {
		conn, err := w.c.pool.GetContext(ctx)
		if err != nil {
			return false, fmt.Errorf("%s: %w", w.what, err)
		}
		w.id = 0
		if !w.noUnlock {
			id, err := redis.Int64(conn.Do("CLIENT", "ID"))
			switch {
			case err == nil:
				w.id = id
			case isUnknownCommand(err):
				w.noUnlock = true
			default:
				conn.Close()
				return false, fmt.Errorf("%s: %w", w.what, err)
			}
		}
		w.conn = conn
	}
	if w.noUnlock {
		timeout = min(timeout, time.Second)
	}
	// BLPOP's 0 means forever: never send less than a millisecond.
	timeout = max(timeout, time.Millisecond)
	returned := make([]atomic.Bool, 1)
	stop := func() {}
	if w.id != 0 {
		stop = w.c.unblockOnCancel(ctx, []int64{w.id}, returned)
	}
	v, err := w.blpop(timeout)
	if err != nil && !w.intSecs && isTimeoutRefused(err) {
		w.intSecs = true // Redis before 6 takes whole seconds only
		v, err = w.blpop(timeout)
	}
	returned[0].Store(true)
	stop()
	if err != nil {
		w.Close()
		if ctx.Err() != nil {
			return false, nil
		}
		return false, fmt.Errorf("%s: %w", w.what, err)
	}
	w.got = nil
	if kv, _ := redis.ByteSlices(v, nil); len(kv) == 2 {
		w.got = kv[1]
	}
	return v != nil, nil
}

func (w *Waker) blpop(timeout time.Duration) (interface{}, error) {
	secs := fmt.Sprintf("%.3f", timeout.Seconds())
	if w.intSecs {
		secs = strconv.FormatInt(int64(math.Ceil(timeout.Seconds())), 10)
	}
	return redis.DoWithTimeout(w.conn, timeout+10*time.Second, "BLPOP", w.key, secs)
}

func isUnknownCommand(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "unknown command")
}

// isNoScript is Redis not knowing a script sent by its SHA-1 (EVALSHA):
// a restart, a new primary, SCRIPT FLUSH.
func isNoScript(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(string(re), "NOSCRIPT")
}

// isTimeoutRefused is Redis before 6 refusing a fractional timeout.
func isTimeoutRefused(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.Contains(string(re), "timeout is not")
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
// returned it) onto their queues (SADD queues, RPUSH queue:<q>): it reads
// them (LRANGE), then moves each with one compare-and-set script
// (moveItemScript), all in one pipeline, so schedulers running at once
// never move an item twice and an item is never half-moved. When the
// list empties, ts leaves the schedule in the same step. It returns
// ErrNotTimestamp when ts is not a Unix time.
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
	items, err := redis.ByteSlices(conn.Do("LRANGE", b.Key, 0, n-1))
	if err != nil {
		return b, fmt.Errorf("move delayed jobs of %s: %w", ts, err)
	}
	if len(items) == 0 {
		if _, err := dropEmptyScript.Do(conn, b.Key, DelayedScheduleKey(c.ns), ts); err != nil {
			return b, fmt.Errorf("move delayed jobs of %s: %w", ts, err)
		}
		return b, nil
	}
	entry := TimestampsEntry(t)
	// Each item's queue, read once (a NOSCRIPT sends it again).
	type pend struct {
		item []byte
		q    string
	}
	send := func(p pend) error {
		qkey := b.Key // declared but untouched when the item stays
		if p.q != "" {
			qkey = QueueKey(c.ns, p.q)
		}
		return moveItemScript.SendHash(conn, b.Key, DelayedScheduleKey(c.ns), QueuesKey(c.ns), qkey,
			TimestampsKey(c.ns, string(p.item)), ts, entry, p.item, p.q)
	}
	var moved []Job
	pending := make([]pend, len(items))
	for i, it := range items {
		pending[i] = pend{it, itemQueue(it)}
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			// The node had not seen the script (a fresh master after a
			// failover, or another scheduler loaded it midway): load
			// it and send again what met NOSCRIPT.
			if attempt > 2 {
				return b, fmt.Errorf("move delayed jobs of %s: script not loaded", ts)
			}
			if err := moveItemScript.Load(conn); err != nil {
				return b, fmt.Errorf("move delayed jobs of %s: %w", ts, err)
			}
		}
		for _, it := range pending {
			if err := send(it); err != nil {
				return b, fmt.Errorf("move delayed jobs of %s: %w", ts, err)
			}
		}
		replies, err := redis.Values(conn.Do(""))
		if err != nil {
			return b, fmt.Errorf("move delayed jobs of %s: %w", ts, err)
		}
		var again []pend
		for i, rep := range replies {
			if e, ok := rep.(redis.Error); ok && isNoScript(e) {
				again = append(again, pending[i])
				continue
			}
			r, err := redis.Values(rep, nil)
			if err != nil || len(r) != 3 {
				return b, fmt.Errorf("move delayed jobs of %s: %v", ts, orUnexpected(err))
			}
			state, _ := redis.Int(r[0], nil)
			b.Left, _ = redis.Int(r[1], nil)
			switch state {
			case 1:
				b.Moved++
				payload, _ := redis.Bytes(r[2], nil)
				// Only a job that kept its "id" has a token to forget.
				if !bytes.Contains(payload, []byte(`"id"`)) {
					continue
				}
				if j, err := Decode(pending[i].q, payload); err == nil && j.ID != "" {
					moved = append(moved, *j)
				}
			case 2:
				b.Kept++
			}
		}
		pending = again
	}
	if err := c.forgetTokens(conn, moved); err != nil {
		return b, fmt.Errorf("move delayed jobs of %s: %w", ts, err)
	}
	c.reportReplicated(conn, "move delayed jobs of", ts)
	return b, nil
}

// itemQueue is the queue delayed item names, or "" when it names no
// usable one (not a JSON object, no string "queue", a name
// ValidateQueueName refuses): such an item stays where it is.
func itemQueue(item []byte) string {
	var p struct {
		Queue interface{} `json:"queue"`
	}
	if json.Unmarshal(item, &p) != nil {
		return ""
	}
	q, _ := p.Queue.(string)
	if ValidateQueueName(q) != nil {
		return ""
	}
	return q
}

// forgetTokens removes the delayed-status entries of moved jobs that kept
// their "id": their worker sees the token, so no job without one may take
// it. It runs just after the move, not in the same script, because the
// entries' keys depend on items the script popped; in between, an
// identical job moved by Ruby could take such a token (docs/scheduling.md,
// "What survives a Ruby scheduler").
func (c *Client) forgetTokens(conn redis.Conn, moved []Job) error {
	if len(moved) == 0 {
		return nil
	}
	for _, j := range moved {
		_ = conn.Send("HDEL", DelayedStatusKey(c.ns, DelayedStatusDigest(j.Queue, j.Class, j.Args)), j.ID)
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

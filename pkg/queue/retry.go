package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// retryScript ends a job that will run again later, in one step and only
// while worker:<id> still holds it (SHA-1 ARGV[1]): the job counts as
// processed (not failed: only the final failure lands in the failed list,
// as with resque-retry), leaves worker:<id>, and its next attempt goes into
// resque-scheduler's delayed set: item ARGV[2] RPUSHed to delayed:<ts>,
// ts added to delayed_queue_schedule, TimestampsEntry(ts) to the item's
// timestamps set. A tracked job's status goes back to waiting.
// What a Ruby resque-scheduler drops from the item is kept besides:
// resque-retry's counter (KEYS[8]) is set to ARGV[7], and the token
// ARGV[10] of a job whose status exists goes into the delayed-status hash
// (KEYS[9]) with value ARGV[9]. Both expire ARGV[8] seconds on; the hash never gets a shorter
// expiry than it had.
// KEYS: worker:<id>, stat:processed, stat:processed:<id>, delayed:<ts>,
// delayed_queue_schedule, timestamps:<item>, the status key, the
// resque-retry counter, the delayed-status hash, DelayedStatusAnyKey,
// SchedulerWakeKey (wakeLua: the poller moves an attempt that is due
// first at once).
// ARGV: sha, item, ts, TimestampsEntry(ts), now, tracked, count, ttl, index
// value, token.
var retryScript = redis.NewScript(11, status.UpdateLua+wakeLua+`
local cur = redis.call('GET', KEYS[1])
if not cur or redis.sha1hex(cur) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('INCRBY', KEYS[2], 1)
redis.call('INCRBY', KEYS[3], 1)
redis.call('RPUSH', KEYS[4], ARGV[2])
resqued_wake(KEYS[5], KEYS[11], ARGV[3], ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[3])
redis.call('SADD', KEYS[6], ARGV[4])
redis.call('SET', KEYS[8], ARGV[7], 'EX', ARGV[8])
if ARGV[6] == '1' and resqued_status(KEYS[7], 1, ARGV[5], 0) == 1 then
  redis.call('HSET', KEYS[9], ARGV[10], ARGV[9])
  if redis.call('TTL', KEYS[9]) < tonumber(ARGV[8]) then redis.call('EXPIRE', KEYS[9], ARGV[8]) end
  if redis.call('TTL', KEYS[10]) < tonumber(ARGV[8]) then redis.call('SET', KEYS[10], '1', 'EX', ARGV[8]) end
end
return 1
`)

// RetryJob ends reserved job r and schedules its next attempt (its
// RetryItem, attempt r.Attempt+1) to be enqueued again at at. It reports
// whether it did (false: the job was no longer in worker:<id>). A payload
// that is not a JSON object cannot be retried: the error then wraps
// ErrInvalidPayload, and nothing was done.
func (c *Client) RetryJob(ctx context.Context, r *Reserved, at time.Time) (bool, error) {
	id, record, j := r.Worker, r.Record, &r.Job
	item, err := RetryItem(j, j.Attempt+1)
	if err != nil {
		return false, fmt.Errorf("retry job on %s: %w: %v", id, ErrInvalidPayload, err)
	}
	ts := at.Unix()
	tracked := "0"
	if j.ID != "" {
		tracked = "1"
	}
	countKey, err := c.retryCountKey(j)
	if err != nil {
		return false, fmt.Errorf("retry job on %s: %w", id, err)
	}
	ttl := max(int64(time.Until(at)/time.Second), 0) + int64(DelayedStatusMargin/time.Second)
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return false, fmt.Errorf("retry job on %s: %w", id, err)
	}
	defer conn.Close()
	n, err := redis.Int(retryScript.Do(conn,
		WorkerKey(c.ns, id), StatKey(c.ns, "processed"), WorkerStatKey(c.ns, "processed", id),
		DelayedKey(c.ns, ts), DelayedScheduleKey(c.ns), TimestampsKey(c.ns, string(item)), status.Key(c.ns, j.ID),
		countKey, DelayedStatusKey(c.ns, DelayedStatusDigest(j.Queue, j.Class, j.Args)), DelayedStatusAnyKey(c.ns),
		SchedulerWakeKey(c.ns),
		record, item, ts, TimestampsEntry(ts), time.Now().Unix(), tracked,
		// resque-retry's counter during attempt N is N-1 (see Restore).
		j.Attempt-1, ttl, DelayedStatusValue(ts, item), j.ID))
	if err != nil {
		return false, fmt.Errorf("retry job on %s: %w", id, err)
	}
	c.reportReplicated(conn, "retry job", j.ID)
	return n == 1, nil
}

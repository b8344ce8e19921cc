package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// retryScript ends a job that will run again later, in one step and only
// while worker:<id> still holds it (SHA-1 ARGV[1]): the job counts as
// processed (not failed: only the final failure lands in the failed list,
// as with resque-retry), leaves worker:<id>, and its next attempt goes into
// resque-scheduler's delayed set: item ARGV[2] RPUSHed to delayed:<ts>,
// ts added to delayed_queue_schedule, "delayed:<ts>" to the item's
// timestamps set. A tracked job's status goes back to waiting.
// KEYS: worker:<id>, stat:processed, stat:processed:<id>, delayed:<ts>,
// delayed_queue_schedule, timestamps:<item>, the status key.
// ARGV: sha, item, ts, "delayed:<ts>", now, tracked.
var retryScript = redis.NewScript(7, status.UpdateLua+`
local cur = redis.call('GET', KEYS[1])
if not cur or redis.sha1hex(cur) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('INCRBY', KEYS[2], 1)
redis.call('INCRBY', KEYS[3], 1)
redis.call('RPUSH', KEYS[4], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[3])
redis.call('SADD', KEYS[6], ARGV[4])
if ARGV[6] == '1' then resqued_status(KEYS[7], 1, ARGV[5], 0) end
return 1
`)

// RetryItem is the delayed-set item for the next attempt of payload from
// queue q: the payload's own fields (class, args, id, ...) with "attempt"
// set to attempt and "queue" added, as resque-scheduler stores items.
func RetryItem(payload []byte, q string, attempt int) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil || m == nil {
		return nil, fmt.Errorf("retry item: payload is not a JSON object")
	}
	m["attempt"] = json.RawMessage(strconv.Itoa(attempt))
	qb, _ := marshal(q)
	m["queue"] = qb
	return marshal(m)
}

// RetryJob ends worker id's job held in record and schedules item to be
// enqueued again at at. It reports whether it did (false: the job was no
// longer in worker:<id>).
func (c *Client) RetryJob(ctx context.Context, id, record, jobID string, item []byte, at time.Time) (bool, error) {
	ts := at.Unix()
	tracked := "0"
	if jobID != "" {
		tracked = "1"
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return false, fmt.Errorf("retry job on %s: %w", id, err)
	}
	defer conn.Close()
	n, err := redis.Int(retryScript.Do(conn,
		WorkerKey(c.ns, id), StatKey(c.ns, "processed"), WorkerStatKey(c.ns, "processed", id),
		DelayedKey(c.ns, ts), DelayedScheduleKey(c.ns), TimestampsKey(c.ns, string(item)), status.Key(c.ns, jobID),
		record, item, ts, "delayed:"+strconv.FormatInt(ts, 10), time.Now().Unix(), tracked))
	if err != nil {
		return false, fmt.Errorf("retry job on %s: %w", id, err)
	}
	return n == 1, nil
}

package queue

import (
	"context"
	"fmt"

	"github.com/gomodule/redigo/redis"
)

// delayedCountBatch is how many delayed:<ts> lists DelayedCount measures
// per round trip.
const delayedCountBatch = 1000

// DelayedCount returns the number of delayed items waiting in
// resque-scheduler's set, which also holds resqued's retries
// (delayed_queue_schedule, and the delayed:<ts> list of each of its
// timestamps), and the number of those timestamps. It costs one LLEN per
// timestamp, pipelined a thousand at a time; a set that changes meanwhile
// is counted as it is when each batch is read.
func (c *Client) DelayedCount(ctx context.Context) (jobs, timestamps int, err error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("count delayed jobs: %w", err)
	}
	defer conn.Close()
	for start := 0; ; start += delayedCountBatch {
		tss, err := redis.Int64s(redis.DoContext(conn, ctx, "ZRANGE", DelayedScheduleKey(c.ns), start, start+delayedCountBatch-1))
		if err != nil {
			return 0, 0, fmt.Errorf("count delayed jobs: %w", err)
		}
		for _, ts := range tss {
			_ = conn.Send("LLEN", DelayedKey(c.ns, ts))
		}
		if err := conn.Flush(); err != nil {
			return 0, 0, fmt.Errorf("count delayed jobs: %w", err)
		}
		for _, ts := range tss {
			n, err := redis.Int(conn.Receive())
			if err != nil {
				return 0, 0, fmt.Errorf("count delayed jobs at %d: %w", ts, err)
			}
			jobs += n
		}
		timestamps += len(tss)
		if len(tss) < delayedCountBatch {
			return jobs, timestamps, nil
		}
	}
}

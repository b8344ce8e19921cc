package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ClaimTick takes the once-per-tick lock of recurring schedule entry name
// at tick for token (SET ScheduleLockKey NX EX ttl), so that of all the
// daemons running one schedule only one enqueues the tick's job. It
// reports whether token holds the lock: a lock already holding token is
// its own, taken by an earlier attempt whose reply was lost.
func (c *Client) ClaimTick(ctx context.Context, name string, tick time.Time, token string, ttl time.Duration) (bool, error) {
	key := ScheduleLockKey(c.ns, name, tick.Unix())
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return false, fmt.Errorf("take the lock of %s tick %s: %w", name, tick.UTC().Format(time.RFC3339), err)
	}
	defer conn.Close()
	_, err = redis.String(conn.Do("SET", key, token, "NX", "EX", int64(ttl/time.Second)))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, redis.ErrNil) {
		return false, fmt.Errorf("take the lock of %s tick %s: %w", name, tick.UTC().Format(time.RFC3339), err)
	}
	holder, err := redis.String(conn.Do("GET", key))
	if errors.Is(err, redis.ErrNil) {
		return false, nil // expired in between: far too late to count
	}
	if err != nil {
		return false, fmt.Errorf("take the lock of %s tick %s: %w", name, tick.UTC().Format(time.RFC3339), err)
	}
	return holder == token, nil
}

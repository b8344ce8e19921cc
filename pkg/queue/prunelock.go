package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
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

package queue

import (
	"context"
	"fmt"

	"github.com/gomodule/redigo/redis"
)

// Counters reads the global stat:processed and stat:failed counters in
// one round trip, as resque-web shows them; missing keys are 0. ctx's
// deadline bounds the read.
func (c *Client) Counters(ctx context.Context) (processed, failed int, err error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read counters: %w", err)
	}
	defer conn.Close()
	vs, err := redis.Values(redis.DoContext(conn, ctx, "MGET", StatKey(c.ns, "processed"), StatKey(c.ns, "failed")))
	if err != nil {
		return 0, 0, fmt.Errorf("read counters: %w", err)
	}
	var p, f *int
	if _, err := redis.Scan(vs, &p, &f); err != nil {
		return 0, 0, fmt.Errorf("read counters: %w", err)
	}
	if p != nil {
		processed = *p
	}
	if f != nil {
		failed = *f
	}
	return processed, failed, nil
}

// Ping checks that Redis answers, within ctx's deadline: the health
// check's question.
func (c *Client) Ping(ctx context.Context) error {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = redis.DoContext(conn, ctx, "PING")
	return err
}

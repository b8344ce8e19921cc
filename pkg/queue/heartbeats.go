package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

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

package queue

import (
	"context"
	"fmt"

	"github.com/gomodule/redigo/redis"
)

// Peek returns jobs start..start+count-1 of queue q, head first, as
// stored, without taking them (LRANGE, read only): the dashboard's queue
// page.
func (c *Client) Peek(ctx context.Context, q string, start, count int) ([][]byte, error) {
	raws, err := redis.ByteSlices(c.do(ctx, "LRANGE", QueueKey(c.ns, q), start, start+count-1))
	if err != nil {
		return nil, fmt.Errorf("peek %s: %w", q, err)
	}
	return raws, nil
}

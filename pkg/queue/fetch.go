package queue

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Fetcher takes jobs off queues for one worker. It keeps one connection of
// its own for blocking pops, so a worker waiting for work costs Redis one
// BLPOP per wait, not a poll loop.
//
// A Fetcher is used by one goroutine at a time.
type Fetcher struct {
	c        *Client
	conn     redis.Conn
	clientID int64
}

// Fetcher returns a new Fetcher. Close it when done.
func (c *Client) Fetcher() *Fetcher { return &Fetcher{c: c} }

// Close releases the Fetcher's connection.
func (f *Fetcher) Close() error {
	if f.conn == nil {
		return nil
	}
	err := f.conn.Close()
	f.conn = nil
	return err
}

func (f *Fetcher) connect(ctx context.Context) error {
	if f.conn != nil && f.conn.Err() == nil {
		return nil
	}
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	conn, err := f.c.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	id, err := redis.Int64(conn.Do("CLIENT", "ID"))
	if err != nil {
		conn.Close()
		return err
	}
	f.conn, f.clientID = conn, id
	return nil
}

// popScript pops from the first non-empty list of KEYS, in order.
var popScript = redis.NewScript(-1, `
for i, k in ipairs(KEYS) do
  local v = redis.call('LPOP', k)
  if v then return {k, v} end
end
return false
`)

// Reserve pops the next job from queues, checked strictly in the order
// given. With timeout > 0 it blocks up to timeout for a job to arrive (one
// BLPOP, which also honours the order when several queues have jobs);
// with timeout <= 0 it only looks once. It returns ErrNoJob when nothing
// came.
//
// Cancelling ctx unblocks a waiting Reserve through CLIENT UNBLOCK, which
// Redis applies atomically: either the pop happened and the job is
// returned, or it did not and ErrNoJob is returned. A job is never lost
// in a closed connection. A job returned after ctx was cancelled still
// belongs to the caller, who should run it or PushFront it.
func (f *Fetcher) Reserve(ctx context.Context, queues []string, timeout time.Duration) (q string, payload []byte, err error) {
	if len(queues) == 0 || ctx.Err() != nil {
		return "", nil, ErrNoJob
	}
	if err := f.connect(ctx); err != nil {
		return "", nil, fmt.Errorf("reserve from %s: %w", strings.Join(queues, ","), err)
	}
	args := make([]interface{}, 0, len(queues)+2)
	if timeout <= 0 {
		args = append(args, len(queues)) // the script's key count
	}
	for _, name := range queues {
		args = append(args, QueueKey(f.c.ns, name))
	}
	var reply interface{}
	if timeout <= 0 {
		reply, err = popScript.Do(f.conn, args...)
	} else {
		secs := timeout.Seconds()
		args = append(args, fmt.Sprintf("%.3f", secs))
		stop := f.unblockOnCancel(ctx)
		reply, err = redis.DoWithTimeout(f.conn, timeout+10*time.Second, "BLPOP", args...)
		stop()
	}
	if err != nil {
		return "", nil, fmt.Errorf("reserve from %s: %w", strings.Join(queues, ","), err)
	}
	if reply == nil {
		return "", nil, ErrNoJob
	}
	kv, err := redis.ByteSlices(reply, nil)
	if err != nil || len(kv) != 2 {
		return "", nil, fmt.Errorf("reserve from %s: unexpected reply %v (%v)", strings.Join(queues, ","), reply, err)
	}
	return strings.TrimPrefix(string(kv[0]), QueuePrefix(f.c.ns)), kv[1], nil
}

// unblockOnCancel starts a watcher that, once ctx is done, unblocks the
// Fetcher's connection until the returned stop function is called. It
// repeats the unblock because the cancel may land before BLPOP reached
// Redis.
func (f *Fetcher) unblockOnCancel(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			conn := f.c.pool.Get()
			_, _ = conn.Do("CLIENT", "UNBLOCK", f.clientID)
			conn.Close()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

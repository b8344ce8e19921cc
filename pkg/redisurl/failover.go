package redisurl

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ErrFailover is what a pooled connection's Err reports once it belongs
// to the server that was the primary before a failover: the pool closes
// it instead of handing it out again, and a caller holding one (a
// dedicated blocking connection) dials a new one.
var ErrFailover = errors.New("connection predates a failover")

// failover tells connections dialled before the last failover from those
// dialled after it. Every connection carries the generation it was
// dialled in; a failover (a READONLY or UNBLOCKED reply, a connection
// that broke, a Sentinel's +switch-master) starts a new generation, and
// connections of older ones are dropped when borrowed or put back.
//
// redigo's Pool has no way to drop its idle connections; this is that
// way, without reaching into it.
type failover struct {
	gen atomic.Uint64
	// switches counts failovers, for tests.
	switches atomic.Int64
}

// bump starts a new generation: every connection dialled so far is stale.
func (f *failover) bump() {
	f.gen.Add(1)
	f.switches.Add(1)
}

// wrap tags c with the current generation.
func (f *failover) wrap(c redis.Conn) redis.Conn {
	return &failoverConn{Conn: c, f: f, gen: f.gen.Load()}
}

// check is the pool's TestOnBorrow part: a stale connection is refused,
// so the pool closes it and takes (or dials) another.
func (f *failover) check(c redis.Conn) error {
	if fc, ok := c.(*failoverConn); ok {
		return fc.stale()
	}
	return nil
}

// isFailoverReply reports whether err is a reply a server gives when it
// is no longer the primary: READONLY (a write on a replica), UNBLOCKED (a
// blocking command cut short because the server became a replica) or
// MASTERDOWN (a replica that lost its primary).
func isFailoverReply(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	s := string(re)
	return strings.HasPrefix(s, "READONLY ") || strings.HasPrefix(s, "UNBLOCKED ") || strings.HasPrefix(s, "MASTERDOWN ")
}

// failoverConn is a pooled connection that watches its replies for signs
// of a failover.
type failoverConn struct {
	redis.Conn
	f      *failover
	gen    uint64
	broken atomic.Bool
}

func (c *failoverConn) stale() error {
	if c.broken.Load() || c.gen != c.f.gen.Load() {
		return ErrFailover
	}
	return nil
}

// note looks at a command's error: a failover reply, or the connection
// itself breaking, makes every connection of this generation stale (the
// others were dialled to the same server) and this one broken.
func (c *failoverConn) note(err error) {
	if err == nil {
		return
	}
	if isFailoverReply(err) || c.Conn.Err() != nil {
		if c.broken.CompareAndSwap(false, true) && c.gen == c.f.gen.Load() {
			c.f.bump()
		}
	}
}

// Err is the connection's own error, or ErrFailover once it is stale.
func (c *failoverConn) Err() error {
	if err := c.Conn.Err(); err != nil {
		return err
	}
	return c.stale()
}

func (c *failoverConn) Do(cmd string, args ...interface{}) (interface{}, error) {
	v, err := c.Conn.Do(cmd, args...)
	c.note(err)
	if cmd == "" {
		c.notePipeline(v)
	}
	return v, err
}

// notePipeline looks at the replies of a pipeline (Do("") after Sends):
// redigo hands each command's error back as a value among them, not as
// Do's error, so a READONLY there would otherwise go unnoticed and the
// connection back to the pool, still to the demoted server, for every
// later pipeline to fail on (the delayed-job mover stalled that way
// until the next failover).
func (c *failoverConn) notePipeline(v interface{}) {
	replies, ok := v.([]interface{})
	if !ok {
		return
	}
	for _, r := range replies {
		if e, ok := r.(redis.Error); ok && isFailoverReply(e) {
			c.note(e)
			return
		}
	}
}

func (c *failoverConn) DoWithTimeout(d time.Duration, cmd string, args ...interface{}) (interface{}, error) {
	v, err := redis.DoWithTimeout(c.Conn, d, cmd, args...)
	c.note(err)
	return v, err
}

func (c *failoverConn) DoContext(ctx context.Context, cmd string, args ...interface{}) (interface{}, error) {
	v, err := redis.DoContext(c.Conn, ctx, cmd, args...)
	c.note(err)
	return v, err
}

func (c *failoverConn) Receive() (interface{}, error) {
	v, err := c.Conn.Receive()
	c.note(err)
	return v, err
}

func (c *failoverConn) ReceiveWithTimeout(d time.Duration) (interface{}, error) {
	v, err := redis.ReceiveWithTimeout(c.Conn, d)
	c.note(err)
	return v, err
}

func (c *failoverConn) ReceiveContext(ctx context.Context) (interface{}, error) {
	v, err := redis.ReceiveContext(c.Conn, ctx)
	c.note(err)
	return v, err
}

package redisurl_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/faultproxy"
	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/redisurl"
)

// managedFailover is what a managed Redis does behind its DNS name: B
// (a replica of A) is promoted, the name (here a proxy) is pointed at B,
// and A is demoted under its live connections.
func managedFailover(t *testing.T, a, b *redistest.Server, name *faultproxy.Proxy) {
	t.Helper()
	b.Do(t, "REPLICAOF", "NO", "ONE")
	name.Retarget(b.Addr)
	host, port, _ := net.SplitHostPort(b.Addr)
	a.Do(t, "REPLICAOF", host, port)
}

// TestPool_ManagedFailover: after the primary behind a name is demoted,
// the first write on an old connection gets READONLY; from then on no
// connection dialled before it is used, and the next write reaches the
// new primary.
func TestPool_ManagedFailover(t *testing.T) {
	t.Parallel()
	a, b, name, p := managedRig(t)

	// Three connections to A: two idle in the pool, one held.
	c1, c2, held := p.Get(), p.Get(), p.Get()
	for _, c := range []redis.Conn{c1, c2, held} {
		if _, err := c.Do("SET", "k", "a"); err != nil {
			t.Fatal(err)
		}
	}
	c1.Close()
	c2.Close()
	managedFailover(t, a, b, name)

	c := p.Get()
	_, err := c.Do("SET", "k", "b")
	if err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		t.Fatalf("first write after the demotion: err = %v, want READONLY from the old connection", err)
	}
	c.Close()
	if got := p.Failovers(); got != 1 {
		t.Errorf("Failovers = %d, want 1", got)
	}
	if !errors.Is(held.Err(), redisurl.ErrFailover) {
		t.Errorf("held connection's Err = %v, want ErrFailover", held.Err())
	}
	held.Close()
	// The other idle connection is never handed out: this write reaches B.
	c = p.Get()
	if _, err := c.Do("SET", "k", "b"); err != nil {
		t.Fatalf("second write: %v", err)
	}
	c.Close()
	if got, _ := redis.String(b.Do(t, "GET", "k"), nil); got != "b" {
		t.Errorf("B has k = %q, want b", got)
	}
	if got := p.Failovers(); got != 1 {
		t.Errorf("Failovers = %d after the recovery, want still 1", got)
	}
}

// TestPool_ManagedFailoverPipeline: a READONLY among a pipeline's
// replies (Do("") after Sends, which hands it back as a value, not as
// Do's error) marks the connection stale as a READONLY of a single
// command does; the next pipeline reaches the new primary.
func TestPool_ManagedFailoverPipeline(t *testing.T) {
	t.Parallel()
	a, b, name, p := managedRig(t)
	c := p.Get()
	if _, err := c.Do("SET", "k", "a"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	managedFailover(t, a, b, name)

	pipeline := func() []interface{} {
		c := p.Get()
		defer c.Close()
		if _, err := c.Do("GET", "k"); err != nil { // a read: fine on a replica
			t.Fatal(err)
		}
		if err := c.Send("SET", "k", "b"); err != nil {
			t.Fatal(err)
		}
		replies, err := redis.Values(c.Do(""))
		if err != nil {
			t.Fatal(err)
		}
		return replies
	}
	if e, ok := pipeline()[0].(redis.Error); !ok || !strings.HasPrefix(string(e), "READONLY") {
		t.Fatalf("first pipelined write after the demotion: want a READONLY reply from the old connection")
	}
	if got := p.Failovers(); got != 1 {
		t.Errorf("Failovers = %d, want 1", got)
	}
	if r := pipeline()[0]; r != "OK" {
		t.Fatalf("second pipelined write: reply %v, want OK from the new primary", r)
	}
	if got, _ := redis.String(b.Do(t, "GET", "k"), nil); got != "b" {
		t.Errorf("B has k = %q, want b", got)
	}
}

// managedRig is a managed primary in miniature: A, its replica B, a proxy
// standing in for the service's DNS name (pointing at A), and a pool
// dialling that name.
func managedRig(t *testing.T) (a, b *redistest.Server, name *faultproxy.Proxy, p *redisurl.Pool) {
	t.Helper()
	a = redistest.Start(t)
	b = redistest.StartReplica(t, a)
	name, err := faultproxy.New(a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { name.Close() })
	return a, b, name, sentinelPool(t, "redis://"+name.Addr, redisurl.Options{})
}

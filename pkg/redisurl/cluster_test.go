package redisurl_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/redisurl"
)

func TestNewPool_ClusterURL(t *testing.T) {
	for _, tc := range []struct{ url, ns string }{
		{"redis+cluster://h:7000,h:7001/", "resque"},     // no tag
		{"redis+cluster://h:7000,h:7001/", "{resque"},    // tag never closed in the namespace
		{"redis+cluster://h:7000,h:7001/", "{}resque"},   // empty tag: the whole key hashes
		{"redis+cluster://h:7000/3", "{resque}"},         // Cluster has only db 0
		{"redis+cluster:///", "{resque}"},                // no host
		{"redis+cluster://h:7000,,h:7001/", "{resque}"},  // an empty host: not the local :6379
		{"redis+cluster://h:7000?read_timeout=x", "{r}"}, // bad option
	} {
		if _, err := redisurl.NewPool(tc.url, redisurl.Options{Namespace: tc.ns}); err == nil {
			t.Errorf("NewPool(%q, namespace %q) accepted", tc.url, tc.ns)
		}
	}
	_, err := redisurl.NewPool("redis+cluster://h:7000/", redisurl.Options{Namespace: "resque"})
	if !errors.Is(err, redisurl.ErrClusterNamespace) || !strings.Contains(err.Error(), "{resque}") {
		t.Errorf("untagged namespace: err = %v, want ErrClusterNamespace naming {resque}", err)
	}
	for _, ok := range []string{"redis+cluster://h:7000,h:7001/", "rediss+cluster://u:p@h:7000/0", "redis+cluster://h"} {
		if _, err := redisurl.NewPool(ok, redisurl.Options{Namespace: "{resque}"}); err != nil {
			t.Errorf("NewPool(%q): %v", ok, err)
		}
	}
}

// TestCluster runs on one real 3-master, 3-replica cluster; the subtests
// run in order, each leaving the cluster healthy for the next.
func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	const ns = "{resque}"
	slot := redisurl.HashSlot(ns + ":queues")
	pool := func(t *testing.T) *redis.Pool {
		p, err := redisurl.NewPool(cl.URL(), redisurl.Options{Namespace: ns, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p.Pool
	}
	role := func(t *testing.T, c redis.Conn) string {
		v, err := redis.Values(c.Do("ROLE"))
		if err != nil || len(v) == 0 {
			t.Fatalf("ROLE: %v", err)
		}
		r, _ := redis.String(v[0], nil)
		return r
	}

	t.Run("HashSlot", func(t *testing.T) {
		for _, k := range []string{"", "resque", "{resque}:queue:default", "{resque}", "a{b}c", "{}x", "{", "}{x}", "x{y", "{a}{b}", "{user1000}.following", "foo{}{bar}", "éé{ü}", "resque:queue:default", "123456789"} {
			want, err := redis.Int(cl.Nodes[0].Do(t, "CLUSTER", "KEYSLOT", k), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := redisurl.HashSlot(k); got != want {
				t.Errorf("HashSlot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
			}
		}
	})

	t.Run("FindsSlotMaster", func(t *testing.T) {
		p := pool(t)
		c := p.Get()
		defer c.Close()
		if _, err := c.Do("SET", ns+":stat:processed", 7); err != nil {
			t.Fatal(err)
		}
		if got := role(t, c); got != "master" {
			t.Errorf("pooled connection is to a %s", got)
		}
		if got, _ := redis.Int(cl.Do(slot, "GET", ns+":stat:processed"), nil); got != 7 {
			t.Errorf("the slot's master holds %d, want 7", got)
		}
	})

	t.Run("MovedAfterFailover", func(t *testing.T) {
		p := pool(t)
		plain, multi := p.Get(), p.Get()
		defer plain.Close()
		defer multi.Close()
		for _, c := range []redis.Conn{plain, multi} {
			if _, err := c.Do("SET", ns+":k", "v"); err != nil {
				t.Fatal(err)
			}
		}
		old, nu := cl.Failover(slot)
		t.Logf("CLUSTER FAILOVER: slot %d moved from %s to %s", slot, old, nu)
		// A plain command follows MOVED to the new master.
		if got, err := redis.String(plain.Do("GET", ns+":k")); err != nil || got != "v" {
			t.Fatalf("GET after failover = %q, %v", got, err)
		}
		if got := role(t, plain); got != "master" {
			t.Errorf("after MOVED the connection is to a %s", got)
		}
		// A transaction returns the error and the connection is dropped.
		_ = multi.Send("MULTI")
		_ = multi.Send("INCR", ns+":n")
		_, err := multi.Do("EXEC")
		if err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
			t.Fatalf("EXEC on the old master: err = %v, want MOVED", err)
		}
		if multi.Err() == nil {
			t.Error("connection that met MOVED inside MULTI is not marked broken")
		}
		// The retry, on a new connection, goes to the new master.
		c := p.Get()
		defer c.Close()
		if _, err := c.Do("INCR", ns+":n"); err != nil {
			t.Fatal(err)
		}
		if got := role(t, c); got != "master" {
			t.Errorf("new connection is to a %s", got)
		}
		if got, _ := redis.Int(cl.Do(slot, "GET", ns+":n"), nil); got != 1 {
			t.Errorf("n = %d after one INCR, want 1 (the aborted MULTI must not count)", got)
		}
		cl.WaitHealthy(60 * time.Second)
	})

	t.Run("Ask", func(t *testing.T) {
		// Migrate another tag's slot halfway: its old owner answers ASK
		// for a key it does not hold.
		const other = "{ask}"
		aslot := redisurl.HashSlot(other)
		src := cl.Shard(aslot).Master
		var dst string
		for _, sl := range []int{0, 8000, 16383} {
			if m := cl.Shard(sl).Master; m != src {
				dst = m
				break
			}
		}
		if dst == "" {
			t.Fatal("no other master to migrate to")
		}
		id := func(addr string) string { return strings.TrimSpace(redisDo(t, addr, "CLUSTER", "MYID")) }
		srcID, dstID := id(src), id(dst)
		redisDo(t, dst, "CLUSTER", "SETSLOT", aslot, "IMPORTING", srcID)
		redisDo(t, src, "CLUSTER", "SETSLOT", aslot, "MIGRATING", dstID)
		t.Cleanup(func() {
			redisDo(t, src, "CLUSTER", "SETSLOT", aslot, "STABLE")
			redisDo(t, dst, "CLUSTER", "SETSLOT", aslot, "STABLE")
		})
		p, err := redisurl.NewPool(cl.URL(), redisurl.Options{Namespace: other, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		c := p.Get()
		defer c.Close()
		if _, err := c.Do("SET", other+":moving", "here"); err != nil {
			t.Fatalf("SET during migration (follows ASK): %v", err)
		}
		if got, _ := redis.String(redisDoRaw(dst, "ASKING", "GET", other+":moving")); got != "here" {
			t.Errorf("the importing node holds %q, want the key written through ASK", got)
		}
	})

	t.Run("MasterKilled", func(t *testing.T) {
		p := pool(t)
		c := p.Get()
		if _, err := c.Do("SET", ns+":k", "before"); err != nil {
			t.Fatal(err)
		}
		c.Close()
		sh := cl.Shard(slot)
		cl.Node(sh.Master).Stop() // SIGKILL
		killed := time.Now()
		var recovered time.Duration
		redistest.Eventually(t, 60*time.Second, func() bool {
			c := p.Get()
			defer c.Close()
			_, err := c.Do("SET", ns+":k", "after")
			if err == nil {
				recovered = time.Since(killed)
			}
			return err == nil
		}, "no write succeeded after the slot's master was killed")
		t.Logf("kill -9 of master %s: writes resumed after %.1fs (cluster-node-timeout %s)", sh.Master, recovered.Seconds(), redistest.ClusterNodeTimeout)
		if got := cl.Shard(slot).Master; got == sh.Master {
			t.Errorf("slot %d still served by the killed %s", slot, got)
		}
	})
}

func redisDo(t *testing.T, addr string, cmd string, args ...interface{}) string {
	t.Helper()
	v, err := redisDoRaw(addr, cmd, args...)
	if err != nil {
		t.Fatalf("%s %v on %s: %v", cmd, args, addr, err)
	}
	s, _ := redis.String(v, nil)
	return s
}

// redisDoRaw runs cmd on addr; with cmd "ASKING" the first arg is the
// command to run after it.
func redisDoRaw(addr string, cmd string, args ...interface{}) (interface{}, error) {
	c, err := redis.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if cmd == "ASKING" {
		if _, err := c.Do("ASKING"); err != nil {
			return nil, err
		}
		cmd, args = fmt.Sprint(args[0]), args[1:]
	}
	return c.Do(cmd, args...)
}

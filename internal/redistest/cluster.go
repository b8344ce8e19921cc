package redistest

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ClusterNodeTimeout is the cluster-node-timeout of StartCluster's nodes:
// how long a master must be unreachable before its replica takes over.
const ClusterNodeTimeout = 2 * time.Second

// Cluster is a Redis Cluster of three masters, each with one replica,
// owned by a test.
type Cluster struct {
	Nodes []*Server
	tb    testing.TB
}

// StartCluster runs six redis-servers with --cluster-enabled yes on free
// loopback ports, joins them with redis-cli --cluster create
// --cluster-replicas 1, and waits until every node reports
// cluster_state:ok and sees all three masters with their replicas. The
// servers stop when the test ends.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		tb.Fatalf("redis-cli not found on PATH: install it with `apt-get install -y redis-server` (make test does this via .ci/run)")
	}
	c := &Cluster{tb: tb}
	addrs := []string{}
	for i := 0; i < 6; i++ {
		// The bus port would be port+10000, which can pass 65535 for a
		// port from the ephemeral range: name one explicitly.
		bus, err := freePort()
		if err != nil {
			tb.Fatalf("find free port: %v", err)
		}
		s := Start(tb, Args("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout/time.Millisecond)),
			"--cluster-port", strconv.Itoa(bus)))
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr)
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(60 * time.Second)
	return c
}

// URL is the redis+cluster:// URL naming every node as a seed.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return "redis+cluster://" + strings.Join(addrs, ",") + "/"
}

// Node returns the node listening on addr, or nil.
func (c *Cluster) Node(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// running are the nodes not stopped.
func (c *Cluster) running() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		s.mu.Lock()
		up := s.cmd != nil
		s.mu.Unlock()
		if up {
			out = append(out, s)
		}
	}
	return out
}

// Shard is a master and its replicas as one node's CLUSTER SLOTS shows
// the range holding a slot.
type Shard struct {
	Master   string
	Replicas []string
}

// ShardOf reads, from node s, who serves slot.
func ShardOf(s *Server, slot int) (Shard, error) {
	conn, err := redis.Dial("tcp", s.Addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(2*time.Second))
	if err != nil {
		return Shard{}, err
	}
	defer conn.Close()
	ranges, err := redis.Values(conn.Do("CLUSTER", "SLOTS"))
	if err != nil {
		return Shard{}, err
	}
	for _, r := range ranges {
		v, _ := redis.Values(r, nil)
		if len(v) < 3 {
			continue
		}
		lo, _ := redis.Int(v[0], nil)
		hi, _ := redis.Int(v[1], nil)
		if slot < lo || slot > hi {
			continue
		}
		var sh Shard
		for i, n := range v[2:] {
			nv, _ := redis.Values(n, nil)
			if len(nv) < 2 {
				continue
			}
			host, _ := redis.String(nv[0], nil)
			port, _ := redis.Int(nv[1], nil)
			addr := fmt.Sprintf("%s:%d", host, port)
			if i == 0 {
				sh.Master = addr
			} else {
				sh.Replicas = append(sh.Replicas, addr)
			}
		}
		return sh, nil
	}
	return Shard{}, fmt.Errorf("no range holds slot %d", slot)
}

// healthy reports whether every running node says cluster_state:ok and
// all agree on the master of each of the three ranges, each with a
// replica among the running nodes (or wantReplicas false).
func (c *Cluster) healthy(wantReplicas bool) bool {
	run := c.running()
	for _, slot := range []int{0, 8000, SlotCountLast} {
		var master string
		for _, s := range run {
			info, err := redis.String(doQuick(s.Addr, "CLUSTER", "INFO"))
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			sh, err := ShardOf(s, slot)
			if err != nil || sh.Master == "" || (master != "" && sh.Master != master) {
				return false
			}
			master = sh.Master
			if wantReplicas && len(sh.Replicas) == 0 {
				return false
			}
		}
	}
	return true
}

// SlotCountLast is the highest hash slot.
const SlotCountLast = 16383

// WaitHealthy waits until every running node reports cluster_state:ok
// and they agree on each slot range's master with a replica.
func (c *Cluster) WaitHealthy(within time.Duration) {
	c.tb.Helper()
	Eventually(c.tb, within, func() bool { return c.healthy(true) }, "redis cluster not healthy")
}

// Shard returns who serves slot, as every running node agrees, waiting
// for them to agree.
func (c *Cluster) Shard(slot int) Shard {
	c.tb.Helper()
	var sh Shard
	Eventually(c.tb, 30*time.Second, func() bool {
		sh = Shard{}
		for _, s := range c.running() {
			got, err := ShardOf(s, slot)
			if err != nil || (sh.Master != "" && got.Master != sh.Master) {
				return false
			}
			sh = got
		}
		return sh.Master != ""
	}, "cluster nodes do not agree on the master of slot %d", slot)
	return sh
}

// Failover runs CLUSTER FAILOVER on a replica of slot's master and waits
// until every running node names that replica as the slot's master. It
// returns the old and the new master.
func (c *Cluster) Failover(slot int) (oldMaster, newMaster string) {
	c.tb.Helper()
	sh := c.Shard(slot)
	if len(sh.Replicas) == 0 {
		c.tb.Fatalf("slot %d's master %s has no replica to fail over to", slot, sh.Master)
	}
	newMaster = sh.Replicas[0]
	if _, err := doQuick(newMaster, "CLUSTER", "FAILOVER"); err != nil {
		c.tb.Fatalf("CLUSTER FAILOVER on %s: %v", newMaster, err)
	}
	c.WaitMaster(slot, newMaster, 30*time.Second)
	return sh.Master, newMaster
}

// WaitMaster waits until every running node names addr as slot's master.
func (c *Cluster) WaitMaster(slot int, addr string, within time.Duration) {
	c.tb.Helper()
	Eventually(c.tb, within, func() bool {
		for _, s := range c.running() {
			if sh, err := ShardOf(s, slot); err != nil || sh.Master != addr {
				return false
			}
		}
		return true
	}, "slot %d's master never became %s", slot, addr)
}

// WaitSwitch waits until slot's master is one other than old (a
// replica took over after a failover or a kill), and returns it.
func (c *Cluster) WaitSwitch(slot int, old string, within time.Duration) string {
	c.tb.Helper()
	var now string
	Eventually(c.tb, within, func() bool {
		now = c.Shard(slot).Master
		return now != old
	}, "no replica took over slot %d from %s within %s", slot, old, within)
	return now
}

// Do runs one command on the master of slot and fails the test on
// error (redis.ErrNil is not one).
func (c *Cluster) Do(slot int, cmd string, args ...interface{}) interface{} {
	c.tb.Helper()
	addr := c.Shard(slot).Master
	v, err := doQuick(addr, cmd, args...)
	if err != nil && err != redis.ErrNil {
		c.tb.Fatalf("%s %v on %s: %v", cmd, args, addr, err)
	}
	return v
}

func doQuick(addr, cmd string, args ...interface{}) (interface{}, error) {
	conn, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.Do(cmd, args...)
}

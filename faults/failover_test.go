package faults

import (
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/faultproxy"
	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/redisurl"
)

// The other two high-availability set-ups, judged by the same checker
// as the Sentinel scenarios (sentinel_test.go), with the same stream of
// enqueues and the same "failover k" markers in the run log:
//
//   - ClusterFailover: a 3-master/3-replica Redis Cluster, daemons on
//     redis+cluster:// with a hash-tagged namespace; rounds alternate
//     CLUSTER FAILOVER on the slot's replica and kill -9 of the slot's
//     master (started again afterwards, so that it rejoins as a replica).
//   - ManagedFailover: two servers behind a name (a fault proxy) that a
//     managed service re-points: promote the replica, retarget the name,
//     demote the old primary under resqued's open connections.

// startCluster runs the Redis Cluster of a "cluster" scenario; srv is
// the master of the namespace's slot, pool follows that slot.
func (c *cluster) startCluster() {
	cl := redistest.StartCluster(c.t)
	h := &haState{cl: cl, slot: redisurl.HashSlot(c.ns), url: cl.URL(), switches: map[int]int{}}
	c.ha = h
	p, err := redisurl.NewPool(h.url, redisurl.Options{Timeout: 2 * time.Second, Namespace: c.ns})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { p.Close() })
	c.pool = p.Pool
	c.srv = cl.Node(cl.Shard(h.slot).Master)
}

// followSlotMaster points srv at the slot's master, should the cluster
// have failed over on its own (a master that answered late for
// cluster-node-timeout on a loaded machine): counted as unplanned.
func (c *cluster) followSlotMaster() {
	h := c.ha
	now := h.cl.Shard(h.slot).Master
	if now == c.srv.Addr {
		return
	}
	c.logf("the cluster names %s, not %s, as slot %d's master: a failover the suite did not cause", now, c.srv.Addr, h.slot)
	h.unplanned++
	c.srv = h.cl.Node(now)
	h.cl.WaitHealthy(haWithin)
}

// clusterRound is one Cluster failover round: a "failover k" marker,
// then CLUSTER FAILOVER on the slot's replica (kill false) or kill -9 of
// the slot's master (kill true, the killed node started again to rejoin
// as a replica); then it waits for cluster_state ok with a replica for
// every slot, and for the new master's replica to acknowledge a WAIT,
// before the next round.
func (c *cluster) clusterRound(kill bool) {
	h := c.ha
	c.followSlotMaster()
	old := c.srv
	if sh := h.cl.Shard(h.slot); len(sh.Replicas) == 0 {
		c.t.Fatalf("slot %d's master %s has no replica to fail over to", h.slot, sh.Master)
	}
	queued, held := c.snapshot()
	appendLine(c.t, c.runs, fmt.Sprintf("failover %d", len(h.rounds)+1))
	t0 := time.Now()
	h.kills.Add(1)
	var now, fault string
	if kill {
		fault = "kill -9"
		old.Stop() // SIGKILL
		c.record(faultRec{Kind: "kill -9 slot master"})
		now = h.cl.WaitSwitch(h.slot, old.Addr, haWithin)
	} else {
		fault = "CLUSTER FAILOVER"
		_, now = h.cl.Failover(h.slot)
		c.record(faultRec{Kind: "cluster failover"})
	}
	switched := time.Now()
	nm := h.cl.Node(now)
	if nm == nil {
		c.t.Fatalf("slot %d moved to %s, which is none of the cluster's nodes", h.slot, now)
	}
	c.srv = nm
	resumed := c.watchResume(nm, switched)
	if kill {
		old.Restart() // its nodes.conf makes it rejoin, as a replica now
	}
	h.cl.WaitHealthy(haWithin)
	redistest.Eventually(c.t, haWithin, func() bool {
		n, err := redis.Int(nm.Do(c.t, "WAIT", 1, 100), nil)
		return err == nil && n >= 1
	}, "the new master %s of slot %d: no replica acknowledged a WAIT", now, h.slot)
	rd := <-resumed
	h.rounds = append(h.rounds, haRound{Fault: fault, From: old.Addr, To: now, Queued: queued, Held: len(held), Switch: switched.Sub(t0), Resume: rd})
	c.logf("failover %d: %s of %s, slot %d's master is %s %.2fs later, a job was recorded there %.2fs after",
		len(h.rounds), fault, old.Addr, h.slot, now, switched.Sub(t0).Seconds(), rd.Seconds())
}

// startManaged runs the managed set-up: A, the primary, and B, its
// replica, behind a name (a fault proxy) the daemons and the stream
// reach them by. pool dials the name afresh each time, so it reaches
// whichever server the name points at.
func (c *cluster) startManaged() {
	a := redistest.Start(c.t)
	b := redistest.StartReplica(c.t, a)
	px, err := faultproxy.New(a.Addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { px.Close() })
	c.proxy = px
	c.ha = &haState{nodes: []*redistest.Server{a, b}, url: "redis://" + px.Addr + "/0", switches: map[int]int{}}
	c.srv = a
	c.pool = &redis.Pool{Dial: func() (redis.Conn, error) {
		return redis.Dial("tcp", px.Addr, redis.DialConnectTimeout(2*time.Second), redis.DialReadTimeout(5*time.Second))
	}}
	c.t.Cleanup(func() { c.pool.Close() })
}

// managedSwitch is one managed failover round, as a managed service
// does it (e2e TestHA_ManagedFailover): writes paused on the primary
// until the replica has all of them, the replica promoted (REPLICAOF NO
// ONE), the name retargeted to it, the old primary demoted (REPLICAOF
// the new one) under resqued's open connections, which then answer
// READONLY or UNBLOCKED, and writes unpaused.
func (c *cluster) managedSwitch() {
	h := c.ha
	from, to := h.nodes[0], h.nodes[1]
	if c.srv == to {
		from, to = to, from
	}
	queued, held := c.snapshot()
	appendLine(c.t, c.runs, fmt.Sprintf("failover %d", len(h.rounds)+1))
	t0 := time.Now()
	h.kills.Add(1)
	switched := redistest.ManagedSwitch(c.t, from, to, haWithin, c.proxy.Retarget)
	c.srv = to
	c.record(faultRec{Kind: "managed switch"})
	resumed := c.watchResume(to, switched)
	from.WaitLinkUp(c.t)
	rd := <-resumed
	h.rounds = append(h.rounds, haRound{Fault: "managed switch", From: from.Addr, To: to.Addr, Queued: queued, Held: len(held), Switch: switched.Sub(t0), Resume: rd})
	c.logf("failover %d: managed switch from %s to %s in %.2fs, a job was recorded there %.2fs after",
		len(h.rounds), from.Addr, to.Addr, switched.Sub(t0).Seconds(), rd.Seconds())
}

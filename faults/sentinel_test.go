package faults

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/redisurl"
)

// The Sentinel scenarios (issue 13): a master, one replica and three
// sentinels; daemons and a stream of enqueues on the redis+sentinel URL;
// every round kills the current master with kill -9 under load, waits
// for the sentinels' switch, and starts the killed server again as a
// replica of the new master, so that the next round has a replica to
// promote.

// haSpec makes a scenario run on Sentinel.
type haSpec struct {
	// Kind: "" for Sentinel, "cluster" for a Redis Cluster, "managed"
	// for a switch behind a name (failover_test.go).
	Kind string
	// MinReplicas: the enqueues wait for one replica too (the daemons
	// get --min-replicas through the scenario's Args).
	MinReplicas bool
}

// haWithin bounds each wait of a failover round; resumeWithin is what
// issue 13 asks: work resumes within 10 s of the sentinels' switch.
const (
	haWithin     = 30 * time.Second
	resumeWithin = 10 * time.Second
	haMaster     = "faults"
)

// haState is the Sentinel world of a cluster.
type haState struct {
	nodes  []*redistest.Server
	ss     *redistest.Sentinels
	url    string
	rounds []haRound
	stream *haStream
	// switches counts the +switch-master events the sentinels
	// announced (the most any one of them saw): more than the rounds
	// means a failover the suite did not cause.
	mu       sync.Mutex
	switches map[int]int
	kills    atomic.Int32 // kills (failovers) so far, read by the stream

	// Cluster and managed set-ups (failover_test.go).
	cl        *redistest.Cluster
	slot      int // the namespace's hash slot
	unplanned int // slot masters changed that no round caused
}

func (h *haState) switchCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, k := range h.switches {
		n = max(n, k)
	}
	return n
}

// haRound is what one kill -9 of the master measured.
type haRound struct {
	Fault          string // what the round did
	From, To       string
	Queued, Held   int           // at the kill: jobs waiting, jobs held by workers
	Switch, Resume time.Duration // fault to the new master (+switch-master); switch to a job recorded on it (-1: never)
}

// failoverSummary is the failover table's line of a scenario.
type failoverSummary struct {
	Rounds []haRound
	// Unplanned: switches the sentinels made that no kill caused (a
	// master too slow to answer for down-after on a loaded machine).
	Unplanned int
	// Measured: the scenario counts losses instead of failing on them
	// (allow.FailoverLoss, no --min-replicas).
	Measured bool
}

func (c *cluster) startHA() {
	switch c.sc.HA.Kind {
	case "cluster":
		c.startCluster()
		return
	case "managed":
		c.startManaged()
		return
	}
	t := c.t
	a := redistest.Start(t)
	b := redistest.StartReplica(t, a)
	// 2 s, not 1: under make test's load (every package at once, with
	// -race) a PING reply a second late made the sentinels fail over on
	// their own now and then.
	ss := redistest.StartSentinels(t, a, haMaster, redistest.SentinelOptions{DownAfter: 2 * time.Second})
	c.ha = &haState{nodes: []*redistest.Server{a, b}, ss: ss, url: "redis+sentinel://" + ss.Addrs() + "/" + haMaster + "/0"}
	p, err := redisurl.NewPool(c.ha.url, redisurl.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c.srv, c.pool = a, p.Pool
	c.ha.switches = map[int]int{}
	for i, s := range ss.Procs {
		c.watchSentinel(i, s.Addr)
	}
}

// watchSentinel follows one sentinel's events. Each +sdown of the
// master and each +switch-master writes a "failover 0" marker into the
// run log, as the kill itself writes one: a failover the suite did not
// cause (a master that only answered late) explains a second run the
// same way.
func (c *cluster) watchSentinel(i int, addr string) {
	conn, err := redis.Dial("tcp", addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	psc := redis.PubSubConn{Conn: conn}
	if err := psc.Subscribe("+sdown", "+switch-master"); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		for {
			switch m := psc.Receive().(type) {
			case error:
				return
			case redis.Message:
				if m.Channel == "+sdown" && !strings.HasPrefix(string(m.Data), "master ") {
					continue // a replica or a sentinel
				}
				if m.Channel == "+switch-master" {
					c.ha.mu.Lock()
					c.ha.switches[i]++
					c.ha.mu.Unlock()
				}
				if f, err := os.OpenFile(c.runs, os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
					_, _ = f.WriteString("failover 0\n")
					f.Close()
				}
				c.logf("sentinel %s: %s %s", addr, m.Channel, m.Data)
			}
		}
	}()
}

// haStream enqueues the scenario's jobs one by one, through its own
// pool on the sentinel URL: a client application. With MinReplicas its
// client waits for one replica, so an enqueue that returned nil is on
// the replica. It pushes them in bursts, one per round and one after
// the last, each when next says so, faster than the workers take them:
// each kill strikes with a backlog queued, jobs running and enqueues on
// the way.
type haStream struct {
	mu       sync.Mutex
	notAcked map[string]bool
	after    map[int]int // job n: the kills before its enqueue
	next     chan struct{}
	done     chan struct{}
}

func (c *cluster) startStream(specs []jobSpec, bursts int) {
	p, err := redisurl.NewPool(c.ha.url, redisurl.Options{Timeout: 2 * time.Second, Namespace: c.ns})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { p.Close() })
	var opts []queue.Option
	if c.sc.HA.MinReplicas {
		opts = append(opts, queue.WithMinReplicas(1, time.Second))
	}
	qc := queue.New(p.Pool, c.ns, opts...)
	s := &haStream{notAcked: map[string]bool{}, after: map[int]int{}, next: make(chan struct{}, bursts), done: make(chan struct{})}
	c.ha.stream = s
	per := (len(specs) + bursts - 1) / bursts
	go func() {
		defer close(s.done)
		for i, j := range specs {
			if i%per == 0 {
				<-s.next
			}
			// Wait, up to a minute, for a master that answers: while
			// there is none an enqueue is never sent, so never in
			// doubt. Only one sent as the master dies is.
			waitFor(time.Minute, func() bool {
				conn := p.Get()
				defer conn.Close()
				_, err := conn.Do("PING")
				return err == nil
			})
			s.mu.Lock()
			s.after[j.N] = int(c.ha.kills.Load())
			s.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := qc.Enqueue(ctx, j.Queue, payload(j), queue.EnqueueOptions{Track: j.Tracked, ID: j.ID()})
			cancel()
			if err != nil {
				s.mu.Lock()
				s.notAcked[j.ID()] = true
				s.mu.Unlock()
				c.logf("enqueue %s: %v", j.ID(), err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
}

// burst lets the stream push its next burst.
func (s *haStream) burst() {
	select {
	case s.next <- struct{}{}:
	default: // every burst is out
	}
}

// finish pushes the last burst, waits for the stream, and returns the
// jobs whose enqueue failed.
func (s *haStream) finish() map[string]bool {
	s.burst()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notAcked
}

// killMaster is one failover round: a "failover k" marker in the run
// log (a job started before it and again after it lost a write in this
// failover), kill -9 of the master, the sentinels' switch, then the
// killed server back as a replica of the new master.
func (c *cluster) killMaster() {
	h := c.ha
	c.followMaster()
	old := c.srv
	queued, held := c.snapshot()
	appendLine(c.t, c.runs, fmt.Sprintf("failover %d", len(h.rounds)+1))
	killed := time.Now()
	h.kills.Add(1)
	old.Stop() // SIGKILL
	c.record(faultRec{Kind: "kill -9 master"})
	now := h.ss.WaitSwitch(c.t, old.Addr, haWithin)
	switched := time.Now()
	var nm *redistest.Server
	for _, n := range h.nodes {
		if n.Addr == now {
			nm = n
		}
	}
	if nm == nil {
		c.t.Fatalf("the sentinels switched to %s, which is none of the suite's servers", now)
	}
	c.srv = nm
	resumed := c.watchResume(nm, switched)
	old.RestartReplicaOf(c.t, nm)
	h.ss.WaitReplicaKnown(c.t, old.Addr, haWithin)
	rd := <-resumed
	h.rounds = append(h.rounds, haRound{Fault: "kill -9", From: old.Addr, To: now, Queued: queued, Held: len(held), Switch: switched.Sub(killed), Resume: rd})
	c.logf("failover %d: killed %s, sentinels switched to %s %.2fs later, a job was recorded there %.2fs after the switch",
		len(h.rounds), old.Addr, now, switched.Sub(killed).Seconds(), rd.Seconds())
	// A sentinel starts no new failover of a master within twice its
	// failover-timeout (2 s, redistest) of the last one's start.
	if wait := 4*time.Second + 500*time.Millisecond - time.Since(switched); wait > 0 {
		time.Sleep(wait)
	}
}

// watchResume measures, from switched, how long nm, the new master,
// takes to record a job (stat:processed grows): -1 if it records none
// within haWithin.
func (c *cluster) watchResume(nm *redistest.Server, switched time.Time) <-chan time.Duration {
	base, _ := redis.Int(nm.Do(c.t, "GET", queue.StatKey(c.ns, "processed")), nil)
	resumed := make(chan time.Duration, 1)
	go func() {
		d := time.Duration(-1)
		waitFor(haWithin, func() bool {
			conn, err := redis.Dial("tcp", nm.Addr)
			if err != nil {
				return false
			}
			defer conn.Close()
			n, err := redis.Int(conn.Do("GET", queue.StatKey(c.ns, "processed")))
			if err == nil && n > base {
				d = time.Since(switched)
				return true
			}
			return false
		})
		resumed <- d
	}()
	return resumed
}

// followMaster points srv at the server the sentinels name as the
// master, should they have failed over on their own (a master that
// answered late for down-after on a loaded machine), and then waits
// until the other server is its healthy replica again. (A cluster's
// srv follows the slot's master; a managed switch's only moves with
// the suite's own switches.)
func (c *cluster) followMaster() {
	switch c.sc.HA.Kind {
	case "cluster":
		c.followSlotMaster()
		return
	case "managed":
		return
	}
	now := c.ha.ss.Master(c.t)
	if now == c.srv.Addr {
		return
	}
	c.logf("the sentinels name %s, not %s, as the master: a failover the suite did not cause", now, c.srv.Addr)
	old := c.srv
	for _, n := range c.ha.nodes {
		if n.Addr == now {
			c.srv = n
		}
	}
	if c.srv == old {
		c.t.Fatalf("the sentinels name %s as the master, which is none of the suite's servers", now)
	}
	c.ha.ss.WaitReplicaKnown(c.t, old.Addr, haWithin)
}

// judgeFailovers adds the failover rounds' verdicts to rep and returns
// the table line.
func (c *cluster) judgeFailovers(rep *report) *failoverSummary {
	s := &failoverSummary{Rounds: c.ha.rounds, Measured: c.sc.Allow.FailoverLoss}
	// A lost job is put down to the first kill after its enqueue.
	lost := map[int]int{}
	c.ha.stream.mu.Lock()
	for _, n := range rep.LostJobs {
		lost[c.ha.stream.after[n]+1]++
	}
	c.ha.stream.mu.Unlock()
	s.Unplanned = c.ha.unplanned
	if n := c.ha.switchCount(); c.ha.ss != nil && n > len(s.Rounds) {
		s.Unplanned = n - len(s.Rounds)
		c.t.Logf("the sentinels switched %d times for %d kills: %d failovers the suite did not cause", n, len(s.Rounds), s.Unplanned)
	}
	for i, r := range s.Rounds {
		sw := "+switch-master"
		if c.ha.ss == nil {
			sw = "new master"
		}
		c.t.Logf("failover %d: %s of %s with %d jobs waiting and %d running, %s %s after %.2fs, next job recorded on it %.2fs after the switch; %d jobs lost, %d run again",
			i+1, r.Fault, r.From, r.Queued, r.Held, sw, r.To, r.Switch.Seconds(), r.Resume.Seconds(), lost[i+1], rep.TwiceAfter[i+1])
		switch {
		case r.Resume < 0:
			rep.errorf("failover %d: no job was recorded on the new master %s within %s of the switch", i+1, r.To, haWithin)
		case r.Resume > resumeWithin:
			rep.errorf("failover %d: work resumed %.2fs after the switch, want within %s (issue 13)", i+1, r.Resume.Seconds(), resumeWithin)
		}
	}
	if len(s.Rounds) < c.sc.Rounds {
		rep.errorf("only %d of %d failovers ran", len(s.Rounds), c.sc.Rounds)
	}
	return s
}

func (s *failoverSummary) max() (sw, res time.Duration) {
	for _, r := range s.Rounds {
		sw, res = max(sw, r.Switch), max(res, r.Resume)
	}
	return sw, res
}

func appendLine(t interface{ Fatal(...interface{}) }, path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

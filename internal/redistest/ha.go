package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// StartReplica starts a redis-server that replicates primary, and waits
// until its link to the primary is up and the primary counts it in WAIT.
// Give it the primary's Password option when the primary has one.
func StartReplica(tb testing.TB, primary *Server, opts ...Option) *Server {
	tb.Helper()
	// The primary waits 5s by default before a diskless full sync, in
	// case more replicas come: none will.
	primary.Do(tb, "CONFIG", "SET", "repl-diskless-sync-delay", "0")
	host, port, _ := net.SplitHostPort(primary.Addr)
	r := Start(tb, append([]Option{Args("--replicaof", host, port)}, opts...)...)
	r.WaitLinkUp(tb)
	// The primary counts the replica in WAIT only once it has
	// acknowledged an offset: after the link is up, that takes one more
	// round.
	Eventually(tb, 20*time.Second, func() bool {
		n, _ := redis.Int(primary.Do(tb, "WAIT", 1, 100), nil)
		return n >= 1
	}, "replica %s of %s: never acknowledged a WAIT", r.Addr, primary.Addr)
	return r
}

// WaitLinkUp waits until the server, a replica, is in sync with its
// primary.
func (s *Server) WaitLinkUp(tb testing.TB) {
	tb.Helper()
	Eventually(tb, 30*time.Second, func() bool {
		return s.Info(tb, "replication")["master_link_status"] == "up"
	}, "replica %s never linked up with its primary", s.Addr)
}

// Info returns one INFO section of the server as a map.
func (s *Server) Info(tb testing.TB, section string) map[string]string {
	tb.Helper()
	raw, _ := redis.String(s.Do(tb, "INFO", section), nil)
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// Role is the first element of ROLE: "master", "slave" or "sentinel".
func (s *Server) Role(tb testing.TB) string {
	tb.Helper()
	vs, _ := redis.Values(s.Do(tb, "ROLE"), nil)
	if len(vs) == 0 {
		return ""
	}
	b, _ := vs[0].([]byte)
	return string(b)
}

// Sentinels are redis-sentinel processes that watch one primary.
type Sentinels struct {
	Name  string    // the master name they monitor it under
	Procs []*Server // the sentinels themselves
}

// SentinelOptions tune StartSentinels.
type SentinelOptions struct {
	// N sentinels (zero means 3) with this Quorum (zero means N/2+1).
	N, Quorum int
	// DownAfter is down-after-milliseconds; zero means 1s.
	DownAfter time.Duration
	// AuthPass is the primary's password, if it has one.
	AuthPass string
	// Password is the sentinels' own (requirepass), if any.
	Password string
}

// StartSentinels starts sentinels that monitor primary as name, and
// waits until every one of them knows the others and the primary's
// replicas, so that a failover can be asked of any.
func StartSentinels(tb testing.TB, primary *Server, name string, opt SentinelOptions) *Sentinels {
	tb.Helper()
	if _, err := exec.LookPath("redis-sentinel"); err != nil {
		tb.Fatalf("redis-sentinel not found on PATH: install it with `apt-get install -y redis-sentinel` (make test does this via .ci/run)")
	}
	if opt.N == 0 {
		opt.N = 3
	}
	if opt.Quorum == 0 {
		opt.Quorum = opt.N/2 + 1
	}
	if opt.DownAfter == 0 {
		opt.DownAfter = time.Second
	}
	host, port, _ := net.SplitHostPort(primary.Addr)
	conf := []string{
		fmt.Sprintf("sentinel monitor %s %s %s %d", name, host, port, opt.Quorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", name, opt.DownAfter.Milliseconds()),
		// Small, so that a second failover in one test is allowed soon.
		fmt.Sprintf("sentinel failover-timeout %s 2000", name),
		fmt.Sprintf("sentinel parallel-syncs %s 1", name),
	}
	if opt.AuthPass != "" {
		conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", name, opt.AuthPass))
	}
	if opt.Password != "" {
		// Sentinels talk to each other too.
		conf = append(conf, "sentinel sentinel-pass "+opt.Password)
	}
	ss := &Sentinels{Name: name}
	for i := 0; i < opt.N; i++ {
		var opts []Option
		s := &Server{tb: tb, Dir: tb.TempDir(), sentinel: conf}
		if opt.Password != "" {
			opts = append(opts, Password(opt.Password))
		}
		ss.Procs = append(ss.Procs, startServer(tb, s, opts))
	}
	want := primary.Info(tb, "replication")["connected_slaves"]
	Eventually(tb, 30*time.Second, func() bool {
		for _, s := range ss.Procs {
			m, err := s.master(name)
			if err != nil || m["num-other-sentinels"] != fmt.Sprint(opt.N-1) || m["num-slaves"] != want {
				return false
			}
		}
		return true
	}, "sentinels never all knew each other and the %s replicas of %s", want, primary.Addr)
	return ss
}

// master is SENTINEL MASTER name as a map.
func (s *Server) master(name string) (map[string]string, error) {
	c, err := redis.Dial("tcp", s.Addr, redis.DialPassword(s.password))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	kv, err := redis.StringMap(c.Do("SENTINEL", "MASTER", name))
	if err != nil {
		return nil, err
	}
	return kv, nil
}

// Addrs is the sentinels' addresses joined by commas, as a
// redis+sentinel URL names them.
func (ss *Sentinels) Addrs() string {
	addrs := make([]string, len(ss.Procs))
	for i, s := range ss.Procs {
		addrs[i] = s.Addr
	}
	return strings.Join(addrs, ",")
}

// Master is the primary's address as the first sentinel that answers
// names it.
func (ss *Sentinels) Master(tb testing.TB) string {
	tb.Helper()
	var last error
	for _, s := range ss.Procs {
		c, err := redis.Dial("tcp", s.Addr, redis.DialPassword(s.password))
		if err != nil {
			last = err
			continue
		}
		hp, err := redis.Strings(c.Do("SENTINEL", "get-master-addr-by-name", ss.Name))
		c.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1])
		}
		last = errors.Join(err, fmt.Errorf("reply %q", hp))
	}
	tb.Fatalf("no sentinel names the primary of %s: %v", ss.Name, last)
	return ""
}

// Failover asks the first sentinel for a failover (SENTINEL FAILOVER) and
// returns the address the primary had.
func (ss *Sentinels) Failover(tb testing.TB) string {
	tb.Helper()
	old := ss.Master(tb)
	ss.Procs[0].Do(tb, "SENTINEL", "FAILOVER", ss.Name)
	return old
}

// WaitSwitch waits until the sentinels name a primary other than old,
// and returns it.
func (ss *Sentinels) WaitSwitch(tb testing.TB, old string, within time.Duration) string {
	tb.Helper()
	var now string
	Eventually(tb, within, func() bool {
		now = ss.Master(tb)
		return now != old
	}, "the sentinels still name %s as the primary of %s", old, ss.Name)
	return now
}

// ManagedSwitch does what a managed Redis service does to fail over
// from one server to its replica behind the name clients use: pause
// writes on from until to has all of them, promote to, point the name at
// it (retarget), demote from under its live connections, and let the
// paused clients go (to READONLY). It returns when the switch is done.
func ManagedSwitch(tb testing.TB, from, to *Server, within time.Duration, retarget func(addr string)) time.Time {
	tb.Helper()
	from.Do(tb, "CLIENT", "PAUSE", "10000", "WRITE")
	Eventually(tb, within, func() bool {
		return from.Info(tb, "replication")["master_repl_offset"] == to.Info(tb, "replication")["master_repl_offset"]
	}, "%s never caught up with %s", to.Addr, from.Addr)
	to.Do(tb, "REPLICAOF", "NO", "ONE")
	retarget(to.Addr)
	host, port, _ := net.SplitHostPort(to.Addr)
	from.demoteTo(tb, host, port)
	from.Do(tb, "CLIENT", "UNPAUSE")
	return time.Now()
}

// demoteTo makes s a replica of host:port. A connection reset on the
// REPLICAOF itself (seen once in make faults, on a loaded machine) does
// not say whether it took: s's role does, and the command is sent again
// until it has.
func (s *Server) demoteTo(tb testing.TB, host, port string) {
	tb.Helper()
	for try := 1; ; try++ {
		c, err := redis.Dial("tcp", s.Addr, redis.DialPassword(s.password))
		if err == nil {
			_, err = c.Do("REPLICAOF", host, port)
			c.Close()
		}
		if err == nil {
			return
		}
		info := s.Info(tb, "replication")
		if info["role"] == "slave" && info["master_host"] == host && info["master_port"] == port {
			return
		}
		if try == 3 {
			tb.Fatalf("REPLICAOF %s %s on %s: %v", host, port, s.Addr, err)
		}
		tb.Logf("REPLICAOF %s %s on %s: %v; sending it again", host, port, s.Addr, err)
	}
}

// RestartReplicaOf starts the server again, on its port and directory,
// as a replica of primary: what an orchestrator does with a master that
// crashed and lost its role in a failover. It waits, as StartReplica
// does, until primary counts it in WAIT.
func (s *Server) RestartReplicaOf(tb testing.TB, primary *Server) {
	tb.Helper()
	s.Stop()
	primary.Do(tb, "CONFIG", "SET", "repl-diskless-sync-delay", "0")
	var args []string
	for i := 0; i < len(s.args); i++ {
		if s.args[i] == "--replicaof" && i+2 < len(s.args) {
			i += 2
			continue
		}
		args = append(args, s.args[i])
	}
	host, port, _ := net.SplitHostPort(primary.Addr)
	s.args = append(args, "--replicaof", host, port)
	var err error
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("restart %s as a replica of %s: %v", s.Addr, primary.Addr, err)
	}
	s.WaitLinkUp(tb)
	Eventually(tb, 20*time.Second, func() bool {
		n, _ := redis.Int(primary.Do(tb, "WAIT", 1, 100), nil)
		return n >= 1
	}, "replica %s of %s: never acknowledged a WAIT", s.Addr, primary.Addr)
}

// WaitReplicaKnown waits until every sentinel lists addr as a healthy
// replica of the primary (flags "slave", link up): until then a
// failover could not choose it.
func (ss *Sentinels) WaitReplicaKnown(tb testing.TB, addr string, within time.Duration) {
	tb.Helper()
	Eventually(tb, within, func() bool {
		for _, s := range ss.Procs {
			if !s.knowsReplica(ss.Name, addr) {
				return false
			}
		}
		return true
	}, "the sentinels of %s never all listed %s as a healthy replica", ss.Name, addr)
}

func (s *Server) knowsReplica(name, addr string) bool {
	c, err := redis.Dial("tcp", s.Addr, redis.DialPassword(s.password))
	if err != nil {
		return false
	}
	defer c.Close()
	vs, err := redis.Values(c.Do("SENTINEL", "REPLICAS", name))
	if err != nil {
		return false
	}
	for _, v := range vs {
		m, err := redis.StringMap(v, nil)
		if err == nil && net.JoinHostPort(m["ip"], m["port"]) == addr {
			return m["flags"] == "slave" && m["master-link-status"] == "ok"
		}
	}
	return false
}

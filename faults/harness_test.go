package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/faultproxy"
	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/internal/testproc"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// readTimeout is resqued's Redis read timeout in the scenarios that go
// through the proxy (?read_timeout= in its URL): a reply later than this
// is one resqued gave up on.
const readTimeout = time.Second

// cluster is one scenario's world: a redis-server, maybe a fault proxy in
// front of it, a handlers directory, the handler's run log and the
// daemons.
type cluster struct {
	t     *testing.T
	sc    scenario
	rng   *rand.Rand
	srv   *redistest.Server
	proxy *faultproxy.Proxy
	pool  *redis.Pool
	dir   string // handlers
	runs  string // the handlers' append-only run log
	sched string // the --schedule file
	ns    string // the key namespace (scenario.Namespace or defaultNS)

	logMu sync.Mutex
	log   bytes.Buffer

	mu      sync.Mutex
	daemons []*daemon
	faults  []faultRec
	pending []jobSpec // Lazy scenarios: jobs the faults have yet to push

	// ha, for the failover scenarios: srv is then whichever server is
	// the master, and pool follows the sentinels (sentinel_test.go),
	// the cluster's slot or the managed name (failover_test.go).
	ha *haState
}

type daemon struct {
	idx  int
	cmd  *exec.Cmd
	done chan struct{}
	pid  int // resqued's own pid (inside unshare, the namespace's pid 1 as seen from here)
}

func (d *daemon) exited(within time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(within):
		return false
	}
}

func (d *daemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

const workScript = `#!/bin/sh
# args: [n, mode, code, k]; logs "start n attempt pid ppid jobid class"
# and "end n attempt result" as single O_APPEND writes.
args=$(cat | tr -d '[]" ')
n=${args%%,*}; r=${args#*,}; mode=${r%%,*}; r=${r#*,}; code=${r%%,*}; k=${r#*,}; k=${k%%,*}
a=${RESQUE_ATTEMPT:-1}
# A worker killed -9 as it spawned this handler closes stdin before its
# death signal lands: no args, so no job, and "?" keeps the line apart.
echo "start ${n:-?} $a $$ $PPID $RESQUE_JOB_ID Work" >> "$LOG"
case "$mode" in
  timeout) exec sleep 1000 ;;
  fail) echo "end $n $a fail" >> "$LOG"; echo "job $n fails on purpose" >&2; exit "$code" ;;
  retry-ok) if [ "$a" -le "$k" ]; then echo "end $n $a retry" >> "$LOG"; exit 75; fi ;;
  retry-fail) if [ "$a" -le "$k" ]; then echo "end $n $a retry" >> "$LOG"; exit 75; fi
    echo "end $n $a fail" >> "$LOG"; exit "$code" ;;
  poison) kill -9 "$PPID"; exec sleep 5 ;;
  spawn) (exec sleep 997) & echo "child $n $!" >> "$LOG"; exec sleep 1000 ;;
esac
sleep 0.0$((n % 4))
echo "end $n $a ok" >> "$LOG"
`

const pworkScript = `#!/bin/sh
# A persistent handler: one job per stdin line, the answer on fd 3.
while IFS= read -r line; do
  args=$(printf '%s' "$line" | sed 's/.*"args":\[\([^]]*\)\].*/\1/' | tr -d '" ')
  n=${args%%,*}; r=${args#*,}; mode=${r%%,*}; r=${r#*,}; code=${r%%,*}
  echo "start $n 1 $$ $PPID - PWork" >> "$LOG"
  case "$mode" in
    timeout) sleep 1000 ;;
    fail) echo "end $n 1 fail" >> "$LOG"
      printf '{"done":"failed","exception":"Fault::Failed","error":"job %s exits %s"}\n' "$n" "$code" >&"$RESQUE_RESULT_FD"
      continue ;;
  esac
  sleep 0.0$((n % 4))
  echo "end $n 1 ok" >> "$LOG"
  printf '{"done":"ok"}\n' >&"$RESQUE_RESULT_FD"
done
`

const tickScript = `#!/bin/sh
cat > /dev/null
echo "start 0 1 $$ $PPID $RESQUE_JOB_ID Tick" >> "$LOG"
`

func newCluster(t *testing.T, sc scenario, seed int64) *cluster {
	c := &cluster{t: t, sc: sc, rng: rand.New(rand.NewSource(seed)), ns: sc.Namespace}
	if c.ns == "" {
		c.ns = defaultNS
	}
	c.dir = t.TempDir()
	tmp := t.TempDir()
	c.runs, c.sched = filepath.Join(tmp, "runs.log"), filepath.Join(tmp, "schedule.yml")
	if err := os.WriteFile(c.sched, []byte("tick:\n  every: 1s\n  class: Tick\n  queue: default\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.runs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"Work": workScript, "PWork.persistent": pworkScript, "Tick": tickScript} {
		body = strings.Replace(body, "\n", "\nLOG='"+c.runs+"'\n", 1)
		if err := os.WriteFile(filepath.Join(c.dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if sc.HA != nil {
		c.startHA() // after the run log: its watchers write markers there
	} else {
		c.srv = redistest.Start(t, redistest.Args("--appendonly", "yes", "--appendfsync", "always"))
		c.pool = c.srv.Pool(t)
	}
	if sc.Proxy {
		p, err := faultproxy.New(c.srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.proxy = p
		t.Cleanup(func() { p.Close() })
	}
	// Every process the scenario started ends with it, by pid: the
	// daemons (and through unshare's --kill-child, their namespaces),
	// their workers, and any handler child that outlived its worker.
	t.Cleanup(c.killEverything)
	return c
}

func (c *cluster) url() string {
	if c.ha != nil {
		return c.ha.url
	}
	if c.proxy != nil {
		return "redis://" + c.proxy.Addr + "?read_timeout=" + readTimeout.String()
	}
	return c.srv.URL()
}

func (c *cluster) logf(format string, args ...interface{}) {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	fmt.Fprintf(&c.log, "=== fault suite %s: "+format+"\n", append([]interface{}{time.Now().Format("15:04:05.000")}, args...)...)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// payload builds job j's queue entry.
func payload(j jobSpec) []byte {
	class := "Work"
	if j.Persistent {
		class = "PWork"
	}
	args := fmt.Sprintf(`[%d,"%s",%d,%d]`, j.N, j.Kind, j.Code, j.Retries)
	switch j.Kind {
	case kMalformed:
		if j.Tracked {
			// JSON with an id, so the reserve script marks it running,
			// but args is not an array.
			return []byte(fmt.Sprintf(`{"class":"Work","args":{"n":%d},"id":"%s"}`, j.N, j.ID()))
		}
		return []byte(fmt.Sprintf(`{"class":"Work","args":[%d,"malformed"],"id":"%s"`, j.N, j.ID())) // no closing brace
	case kOversize:
		args = fmt.Sprintf(`[%d,"ok",0,0,"%s"]`, j.N, strings.Repeat("x", 5000))
	}
	p := fmt.Sprintf(`{"class":"%s","args":%s,"id":"%s"`, class, args, j.ID())
	if j.Kind == kRetryOK || j.Kind == kRetryFail {
		p += fmt.Sprintf(`,"retry":{"attempts":%d,"backoff":"fixed","delay":0.2,"jitter":0}`, j.Retries+1)
	}
	return []byte(p + "}")
}

func (c *cluster) enqueue(specs []jobSpec) {
	ctx := context.Background()
	qc := queue.New(c.pool, c.ns)
	for _, j := range specs {
		opt := queue.EnqueueOptions{Track: j.Tracked, ID: j.ID()}
		var err error
		if j.Delayed {
			err = qc.Delay(ctx, time.Now().Add(time.Duration(c.rng.Intn(3000))*time.Millisecond), j.Queue, payload(j), opt)
		} else {
			err = qc.Enqueue(ctx, j.Queue, payload(j), opt)
		}
		if err != nil {
			c.t.Fatalf("enqueue %s: %v", j, err)
		}
	}
}

// start runs daemon idx (a new one, or a replacement).
func (c *cluster) start(idx int) *daemon {
	args := []string{"--redis", c.url(), "--handlers", c.dir, "--queues", "high,default,low",
		"--timeout", "2", "--term-timeout", "0.3", "--interval", "0.5", "--max-payload", "4096", "-v",
		"--count", strconv.Itoa(c.sc.Count)}
	if c.ns != defaultNS {
		args = append(args, "--namespace", c.ns)
	}
	args = append(args, c.sc.Args...)
	if c.sc.Schedule {
		args = append(args, "--schedule", c.sched)
	}
	var cmd *exec.Cmd
	if c.sc.PIDNamespace {
		args = append(args, c.sc.NSArgs...)
		cmd = exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", resqued}, args...)...)
	} else {
		cmd = exec.Command(resqued, args...)
	}
	w := &lockedWriter{mu: &c.logMu, w: &c.log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start daemon: %v", err)
	}
	d := &daemon{idx: idx, cmd: cmd, done: make(chan struct{}), pid: cmd.Process.Pid}
	go func() { _ = cmd.Wait(); close(d.done) }()
	if c.sc.PIDNamespace {
		// resqued is unshare's only child.
		ok := waitFor(10*time.Second, func() bool {
			kids := childrenOf(cmd.Process.Pid)
			if len(kids) == 1 {
				d.pid = kids[0]
				return true
			}
			return false
		})
		if !ok {
			c.t.Fatalf("unshare %d started no resqued", cmd.Process.Pid)
		}
	}
	c.mu.Lock()
	if idx < len(c.daemons) {
		c.daemons[idx] = d
	} else {
		c.daemons = append(c.daemons, d)
	}
	c.mu.Unlock()
	c.logf("daemon %d started, pid %d", idx, d.pid)
	return d
}

func (c *cluster) daemon(idx int) *daemon {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.daemons[idx]
}

// workers returns the worker processes of d: its children when it
// supervises (--count > 1), else d itself.
func (c *cluster) workers(d *daemon) []int {
	if c.sc.Count > 1 {
		return childrenOf(d.pid)
	}
	return []int{d.pid}
}

func (c *cluster) record(f faultRec) {
	c.mu.Lock()
	c.faults = append(c.faults, f)
	c.mu.Unlock()
	c.logf("fault %s (killed %v)", f.Kind, f.Killed)
}

func (c *cluster) stat(name string) int {
	if c.ha != nil {
		// Whichever server is the master now, through the sentinels
		// (a connection to a master just killed fails: try again).
		var n int
		if !waitFor(haWithin, func() bool {
			conn := c.pool.Get()
			defer conn.Close()
			var err error
			n, err = redis.Int(conn.Do("GET", queue.StatKey(c.ns, name)))
			return err == nil || err == redis.ErrNil
		}) {
			c.t.Fatalf("stat:%s: no master answered within %s", name, haWithin)
		}
		return n
	}
	n, _ := redis.Int(c.srv.Do(c.t, "GET", queue.StatKey(c.ns, name)), nil)
	return n
}

// drained: no job queued, held by a worker or waiting in the delayed set.
func (c *cluster) drained() bool {
	waiting, held := c.snapshot()
	return waiting == 0 && len(held) == 0
}

// snapshotScript reads, in one atomic step, how many jobs wait (queued or
// delayed) and the worker:<id> values that hold a job. Read one by one,
// a pruner moving a job from a dead worker back to its queue between the
// two reads made the run look drained while that job was still queued.
var snapshotScript = redis.NewScript(4, `
local n = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3]) + redis.call('ZCARD', KEYS[4])
local held = {}
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
  if string.sub(k, -8) ~= ':started' then
    local v = redis.call('GET', k)
    if v and not string.find(v, '"paused":true', 1, true) then table.insert(held, v) end
  end
end
return {n, held}
`)

func (c *cluster) snapshot() (waiting int, held []string) {
	conn := c.pool.Get()
	defer conn.Close()
	vs, err := redis.Values(snapshotScript.Do(conn, queue.QueueKey(c.ns, "high"), queue.QueueKey(c.ns, "default"),
		queue.QueueKey(c.ns, "low"), queue.DelayedScheduleKey(c.ns), queue.WorkerKey(c.ns, "*")))
	if err != nil || len(vs) != 2 {
		return -1, nil // unknown: not drained
	}
	waiting, _ = redis.Int(vs[0], nil)
	held, _ = redis.Strings(vs[1], nil)
	return waiting, held
}

// inFlight returns the job ids held in worker:<id> keys (not paused markers).
func (c *cluster) inFlight() map[string]bool {
	ids := map[string]bool{}
	_, held := c.snapshot()
	for _, v := range held {
		if n, ok := jobN(v); ok {
			ids[fmt.Sprintf("job-%05d", n)] = true
		} else {
			ids["(not a suite job) "+v] = true
		}
	}
	return ids
}

// stopAll sends QUIT to every daemon and waits; one that will not exit is
// killed and reported.
func (c *cluster) stopAll() {
	c.mu.Lock()
	ds := append([]*daemon{}, c.daemons...)
	c.mu.Unlock()
	for _, d := range ds {
		if d.alive() {
			_ = syscall.Kill(d.pid, syscall.SIGQUIT)
		}
	}
	for _, d := range ds {
		if !d.exited(30 * time.Second) {
			c.t.Errorf("daemon %d (pid %d) did not exit within 30s of QUIT; killing it", d.idx, d.pid)
			c.killDaemon(d)
		}
	}
}

func (c *cluster) killDaemon(d *daemon) []int {
	if !d.alive() {
		// Exited already: its pid, and its children's, may be another
		// process's by now (pids are reused; pid_max is 32768 here).
		return nil
	}
	pids := append(c.workers(d), d.pid)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = d.cmd.Process.Kill() // unshare, when there is one
	<-d.done
	return uniq(pids)
}

func (c *cluster) killEverything() {
	c.mu.Lock()
	ds := append([]*daemon{}, c.daemons...)
	c.mu.Unlock()
	for _, d := range ds {
		if d.alive() {
			c.killDaemon(d)
		}
	}
	for _, pid := range c.strays() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// strays are handler children (from "child n pid" log lines) still alive.
func (c *cluster) strays() []int {
	b, _ := os.ReadFile(c.runs)
	var pids []int
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "child" {
			pid, _ := strconv.Atoi(f[2])
			// Exactly the handler's child: pids are reused (pid_max is
			// 32768 here, and make test spawns thousands of processes),
			// and a mere "997" in the command line matched others too (a
			// redis-server whose directory name holds it), which
			// killEverything would then SIGKILL.
			if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Equal(cmd, []byte("sleep\x00997\x00")) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// observe reads everything the checker needs, from Redis directly (never
// through the proxy) and from the run log.
func (c *cluster) observe(specs []jobSpec) observed {
	ctx := context.Background()
	obs := observed{Statuses: map[string]statusObs{}, Queued: map[string]bool{}}
	qc := queue.New(c.pool, c.ns)
	fs, err := qc.Failures(ctx, 0, -1)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, f := range fs {
		obs.Failures = append(obs.Failures, failure{Exception: f.Exception, Error: f.Error, Payload: string(f.Payload)})
	}
	for _, j := range specs {
		if !j.Tracked {
			continue
		}
		v, _ := redis.Bytes(c.srv.Do(c.t, "GET", status.Key(c.ns, j.ID())), nil)
		if v == nil {
			obs.Statuses[j.ID()] = statusObs{}
			continue
		}
		var st status.Status
		_ = json.Unmarshal(v, &st)
		ttl, _ := redis.Int(c.srv.Do(c.t, "TTL", status.Key(c.ns, j.ID())), nil)
		obs.Statuses[j.ID()] = statusObs{Present: true, Code: int(st.Code), TTL: ttl}
	}
	obs.Processed, obs.FailedStat = c.stat("processed"), c.stat("failed")
	for _, q := range []string{"high", "default", "low"} {
		items, _ := redis.Strings(c.srv.Do(c.t, "LRANGE", queue.QueueKey(c.ns, q), 0, -1), nil)
		for _, it := range items {
			if n, ok := jobN(it); ok {
				obs.Queued[fmt.Sprintf("job-%05d", n)] = true
			} else if strings.Contains(it, `"class":"Tick"`) {
				obs.TicksQueued++
			}
		}
	}
	obs.InFlight = c.inFlight()
	obs.Delayed, _ = redis.Int(c.srv.Do(c.t, "ZCARD", queue.DelayedScheduleKey(c.ns)), nil)
	if c.sc.Schedule {
		keys, _ := redis.Strings(c.srv.Do(c.t, "KEYS", strings.TrimSuffix(queue.ScheduleLockKey(c.ns, "tick", 0), "0")+"*"), nil)
		for _, k := range keys {
			v, _ := redis.String(c.srv.Do(c.t, "GET", k), nil)
			obs.TickLocks = append(obs.TickLocks, v)
		}
	}
	obs.Runs = readRuns(c.t, c.runs)
	c.mu.Lock()
	obs.Faults = append([]faultRec{}, c.faults...)
	c.mu.Unlock()
	return obs
}

func readRuns(t testing.TB, path string) []run {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var runs []run
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if r, ok := parseRun(sc.Text()); ok {
			runs = append(runs, r)
		}
	}
	return runs
}

func parseRun(line string) (run, bool) {
	f := strings.Fields(line)
	if len(f) > 1 {
		if _, err := strconv.Atoi(f[1]); err != nil {
			// "start ? ...": the handler got no args (its worker died
			// before sending them), so it ran no job.
			return run{}, false
		}
	}
	atoi := func(i int) int {
		if i >= len(f) {
			return 0
		}
		n, _ := strconv.Atoi(f[i])
		return n
	}
	switch {
	case len(f) == 7 && f[0] == "start":
		return run{Start: true, N: atoi(1), Attempt: atoi(2), PID: atoi(3), PPID: atoi(4), JobID: f[5], Class: f[6]}, true
	case len(f) == 6 && f[0] == "start": // RESQUE_JOB_ID empty
		return run{Start: true, N: atoi(1), Attempt: atoi(2), PID: atoi(3), PPID: atoi(4), Class: f[5]}, true
	case len(f) == 2 && f[0] == "failover":
		return run{Failover: true, N: atoi(1)}, true
	case len(f) == 4 && f[0] == "end":
		return run{N: atoi(1), Attempt: atoi(2), Result: f[3], Class: "Work"}, true
	}
	return run{}, false
}

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	want := strconv.Itoa(pid)
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fs := strings.Fields(s[i+1:])
		if len(fs) > 2 && fs[1] == want && fs[0] != "Z" {
			kids = append(kids, p)
		}
	}
	return kids
}

// processAlive reports whether some process (not a zombie) has pid.
func processAlive(pid int) bool { return testproc.Alive(pid) }

func uniq(a []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, x := range a {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// waitFor polls cond until it holds or within passes; it reports which.
func waitFor(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	delay := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
)

// bench holds what every measurement needs.
type bench struct {
	cfg      config
	resqued  string // binary
	handlers string // directory: Noop, Sh.sh, Stamp
	fifo     string // the Stamp handler writes its start time here
	stamps   chan int64
	srv      *redisServer
	tmp      string
	rep      *report
}

// handlerFiles are the throughput handlers: the compiled no-op and a
// shell script.
var handlerFiles = []string{"Noop", "Sh.sh"}

// drainResult is one resqued throughput run.
type drainResult struct {
	wall     time.Duration // from starting resqued to its exit
	cpu      time.Duration // CPU of resqued's processes and the handlers, per job
	redisCPU time.Duration // CPU of redis-server, per job
}

// drain pre-enqueues n jobs of class, runs resqued with --interval 0 and
// COUNT=count until it exits, and returns how long that took, from
// starting the process to its exit (so it includes resqued's start-up,
// registration and unregistration), and the CPU it and Redis used.
func (b *bench) drain(class string, n, count int, env ...string) (drainResult, error) {
	var r drainResult
	if err := b.srv.flush(); err != nil {
		return r, err
	}
	if err := b.srv.preEnqueue(class, n); err != nil {
		return r, err
	}
	redis0, err := b.srv.cpu()
	if err != nil {
		return r, err
	}
	start := time.Now()
	d, err := startDaemon(b.resqued, b.srv.url(), b.handlers, count, "0", env...)
	if err != nil {
		return r, err
	}
	if err := d.wait(10 * time.Minute); err != nil {
		return r, err
	}
	r.wall = time.Since(start)
	redis1, err := b.srv.cpu()
	if err != nil {
		return r, err
	}
	r.redisCPU = (redis1 - redis0) / time.Duration(n)
	// wait4's usage of a process covers it and every descendant it
	// waited for: here the supervisor, the workers and the handlers.
	if ru, ok := d.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = rusageCPU(ru) / time.Duration(n)
	}
	return r, b.srv.checkDrained(n)
}

// rtt measures the Redis round trip: k PINGs in a row, mean per PING.
func (b *bench) rtt(k int) (time.Duration, error) {
	c := b.srv.pool.Get()
	defer c.Close()
	start := time.Now()
	for i := 0; i < k; i++ {
		if _, err := c.Do("PING"); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / time.Duration(k), nil
}

// throughput: the exec ceiling and resqued, per handler and parallelism,
// interleaved run by run so that drift hits both alike.
func (b *bench) throughput() error {
	n := b.cfg.jobs
	type key struct {
		file string
		par  int
	}
	type series struct{ ceil, per, ceilCPU, rate, ratio, cpu, redisCPU []float64 }
	res := map[key]*series{}
	var rtts []float64
	for run := 1; run <= b.cfg.runs; run++ {
		rt, err := b.rtt(10000)
		if err != nil {
			return err
		}
		rtts = append(rtts, float64(rt)/1e3)
		for _, file := range handlerFiles {
			class := shortName(file)
			spec := newSpawnSpec(b.handlers, file, class)
			for _, par := range b.cfg.counts {
				k := key{file, par}
				if res[k] == nil {
					res[k] = &series{}
				}
				s := res[k]
				c, err := spawnMany(spec, n, par)
				if err != nil {
					return fmt.Errorf("exec ceiling %s ×%d: %w", class, par, err)
				}
				d, err := b.drain(class, n, par)
				if err != nil {
					return fmt.Errorf("resqued %s COUNT=%d: %w", class, par, err)
				}
				cr, rr := c.rate(n), float64(n)/d.wall.Seconds()
				s.ceil = append(s.ceil, cr)
				s.per = append(s.per, ms(c.perExec))
				s.ceilCPU = append(s.ceilCPU, ms(c.cpu))
				s.rate = append(s.rate, rr)
				s.ratio = append(s.ratio, rr/cr)
				s.cpu = append(s.cpu, ms(d.cpu))
				s.redisCPU = append(s.redisCPU, ms(d.redisCPU))
				progress("throughput run %d/%d %s ×%d: ceiling %.0f/s (%.2f ms/exec, CPU %.2f ms), resqued %.0f jobs/s (CPU %.2f ms + Redis %.2f ms), ratio %.2f",
					run, b.cfg.runs, class, par, cr, ms(c.perExec), ms(c.cpu), rr, ms(d.cpu), ms(d.redisCPU), rr/cr)
			}
		}
	}
	b.rep.section("Context")
	b.rep.add(row{name: "Redis round trip, PING on loopback (µs)", vals: rtts, prec: 0})
	for _, file := range handlerFiles {
		class := shortName(file)
		b.rep.section(fmt.Sprintf("Throughput, %s handler (%s jobs)", class, num(float64(n), 0)))
		for _, par := range b.cfg.counts {
			s := res[key{file, par}]
			b.rep.add(row{name: fmt.Sprintf("exec ceiling ×%d (execs/s)", par), vals: s.ceil, prec: 0})
			b.rep.add(row{name: fmt.Sprintf("exec ceiling ×%d: wall time per exec (ms)", par), vals: s.per, prec: 2})
			b.rep.add(row{name: fmt.Sprintf("exec ceiling ×%d: CPU per exec, loop + handler (ms)", par), vals: s.ceilCPU, prec: 2})
			b.rep.add(row{name: fmt.Sprintf("resqued COUNT=%d (jobs/s)", par), vals: s.rate, prec: 0})
			b.rep.add(row{name: fmt.Sprintf("resqued COUNT=%d: CPU per job, resqued + handler (ms)", par), vals: s.cpu, prec: 2})
			b.rep.add(row{name: fmt.Sprintf("resqued COUNT=%d: its own CPU per job, over the ceiling's (ms)", par), vals: diff(s.cpu, s.ceilCPU), prec: 2,
				target: "≤ 0.10", check: atMost(0.10)})
			b.rep.add(row{name: fmt.Sprintf("resqued COUNT=%d: redis-server CPU per job (ms)", par), vals: s.redisCPU, prec: 3,
				target: "≤ 0.07", check: atMost(0.07)})
			// The shell handler's exec is the slowest, so the daemon's
			// fixed cost weighs least on it, except at COUNT 4, where
			// the machine's cores are shared with the handlers' shells.
			ratio := 0.90
			if class == "Sh" && par == 4 {
				ratio = 0.85
			}
			b.rep.add(row{name: fmt.Sprintf("resqued COUNT=%d / exec ceiling ×%d", par, par), vals: s.ratio, prec: 2,
				target: fmt.Sprintf("≥ %.2f", ratio), check: atLeast(ratio)})
		}
	}
	return nil
}

// readStamps feeds the FIFO's lines to b.stamps.
func (b *bench) readStamps() error {
	if err := syscall.Mkfifo(b.fifo, 0o600); err != nil {
		return fmt.Errorf("mkfifo: %w", err)
	}
	// Opened for reading and writing, the FIFO never reports EOF between
	// handlers, and opening it never blocks.
	f, err := os.OpenFile(b.fifo, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	b.stamps = make(chan int64, 64)
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if n, err := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64); err == nil {
				b.stamps <- n
			}
		}
	}()
	return nil
}

func (b *bench) stamp() (int64, error) {
	select {
	case s := <-b.stamps:
		return s, nil
	case <-time.After(30 * time.Second):
		return 0, fmt.Errorf("no stamp from the handler within 30s")
	}
}

// pickup measures, per run, (a) spawn-to-first-instruction of the Stamp
// handler started as the exec ceiling starts it, and (b) pickup latency:
// jobs pushed one at a time into an idle resqued (COUNT=1, default
// interval), from the end of RPUSH to the handler's first instruction.
func (b *bench) pickup() error {
	n := b.cfg.pickupJobs
	spec := newSpawnSpec(b.handlers, "Stamp", "Stamp", "RESQUED_BENCH_STAMP="+b.fifo)
	var spawnP, pickP, addedP, persP [3][]float64 // p50, p99, max
	for run := 1; run <= b.cfg.runs; run++ {
		spawn := make([]float64, 0, n)
		for i := 0; i < n; i++ {
			t0 := time.Now().UnixNano()
			if err := spawnOnce(spec); err != nil {
				return fmt.Errorf("spawn Stamp: %w", err)
			}
			s, err := b.stamp()
			if err != nil {
				return err
			}
			spawn = append(spawn, float64(s-t0)/1e6)
		}
		pick, err := b.pickupRun(n, "Stamp")
		if err != nil {
			return err
		}
		ppick, err := b.pickupRun(n, "PStamp")
		if err != nil {
			return err
		}
		for i, v := range quantiles(ppick) {
			persP[i] = append(persP[i], v)
		}
		sq, pq := quantiles(spawn), quantiles(pick)
		for i := range sq {
			spawnP[i] = append(spawnP[i], sq[i])
			pickP[i] = append(pickP[i], pq[i])
			// Conservative: the typical (median) spawn cost is taken off
			// every quantile, so the spawn's own tail counts against
			// resqued.
			addedP[i] = append(addedP[i], pq[i]-sq[0])
		}
		progress("pickup run %d/%d: spawn p50 %.3f p99 %.3f max %.3f ms; pickup p50 %.3f p99 %.3f max %.3f ms",
			run, b.cfg.runs, sq[0], sq[1], sq[2], pq[0], pq[1], pq[2])
	}
	b.rep.section(fmt.Sprintf("Pickup latency, idle daemon, COUNT=1 (%s jobs pushed one at a time)", num(float64(n), 0)))
	names := []string{"p50", "p99", "max"}
	for i, q := range names {
		b.rep.add(row{name: "exec ceiling: spawn to handler's first instruction, " + q + " (ms)", vals: spawnP[i], prec: 3})
	}
	for i, q := range names {
		b.rep.add(row{name: "resqued: push end to handler's first instruction, " + q + " (ms)", vals: pickP[i], prec: 3})
	}
	// p50 and p99; the max has no target.
	targets := []struct {
		t string
		f func(float64) bool
	}{{"< 0.3 ms", func(v float64) bool { return v < 0.3 }}, {"< 1 ms", func(v float64) bool { return v < 1 }}, {}}
	for i, q := range names {
		b.rep.add(row{name: "added by resqued (pickup " + q + " − spawn p50) (ms)", vals: addedP[i], prec: 3,
			target: targets[i].t, check: targets[i].f})
	}
	for i, q := range names {
		b.rep.add(row{name: "persistent handler already running: push end to its reading the job, " + q + " (ms)", vals: persP[i], prec: 3,
			target: targets[i].t, check: targets[i].f})
	}
	return nil
}

// pickupRun pushes n jobs of class (Stamp, or the persistent PStamp) one
// at a time, each once resqued is idle (blocked in BLMOVE) and the
// previous job is recorded, and returns the latencies in ms.
func (b *bench) pickupRun(n int, class string) ([]float64, error) {
	if err := b.srv.flush(); err != nil {
		return nil, err
	}
	if _, err := b.srv.do("SADD", queue.QueuesKey("resque"), benchQueue); err != nil {
		return nil, err
	}
	d, err := startDaemon(b.resqued, b.srv.url(), b.handlers, 1, "", "RESQUED_BENCH_STAMP="+b.fifo)
	if err != nil {
		return nil, err
	}
	defer d.quit()
	conn := b.srv.pool.Get()
	defer conn.Close()
	ps := payloads(class, n)
	key := queue.QueueKey("resque", benchQueue)
	out := make([]float64, 0, n)
	idle := func() (bool, error) {
		k, err := b.srv.blockedClients()
		return k >= 1, err
	}
	for i, p := range ps {
		if err := waitFor(30*time.Second, 200*time.Microsecond, "resqued idle in BLMOVE", idle); err != nil {
			return nil, fmt.Errorf("%w; output:\n%s", err, d.stderr.String())
		}
		time.Sleep(b.cfg.pickupSettle)
		if _, err := conn.Do("RPUSH", key, p); err != nil {
			return nil, err
		}
		pushed := time.Now().UnixNano()
		s, err := b.stamp()
		if err != nil {
			return nil, fmt.Errorf("%w; output:\n%s", err, d.stderr.String())
		}
		out = append(out, float64(s-pushed)/1e6)
		want := i + 1
		if err := waitFor(30*time.Second, 200*time.Microsecond, "job recorded", func() (bool, error) {
			n, err := b.srv.getInt(queue.StatKey("resque", "processed"))
			return n >= want, err
		}); err != nil {
			return nil, err
		}
	}
	if err := d.quit(); err != nil {
		return nil, err
	}
	return out, b.srv.checkDrained(n)
}

// enqueue measures resqued enqueue: one job per invocation, and --stdin
// bulk mode.
func (b *bench) enqueue() error {
	var single, bulk []float64
	var lines bytes.Buffer
	for i := 0; i < b.cfg.bulkJobs; i++ {
		fmt.Fprintf(&lines, `{"class":"Noop","args":[%d,"bench"]}`+"\n", i)
	}
	env := cleanEnv("REDIS_URL=" + b.srv.url())
	key := queue.QueueKey("resque", benchQueue)
	for run := 1; run <= b.cfg.runs; run++ {
		if err := b.srv.flush(); err != nil {
			return err
		}
		n := b.cfg.enqueueInvocations
		start := time.Now()
		for i := 0; i < n; i++ {
			cmd := exec.Command(b.resqued, "enqueue", "--queue", benchQueue, "Noop", strconv.Itoa(i), "bench")
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("resqued enqueue: %v: %s", err, out)
			}
		}
		wall := time.Since(start)
		if got, err := redis.Int(b.srv.do("LLEN", key)); err != nil || got != n {
			return fmt.Errorf("after %d enqueues the queue holds %d jobs (%v)", n, got, err)
		}
		single = append(single, float64(n)/wall.Seconds())

		if err := b.srv.flush(); err != nil {
			return err
		}
		cmd := exec.Command(b.resqued, "enqueue", "--stdin", "--quiet", "--queue", benchQueue)
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(lines.Bytes())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start = time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("resqued enqueue --stdin: %v: %s", err, stderr.String())
		}
		wall = time.Since(start)
		if strings.TrimSpace(stdout.String()) != strconv.Itoa(b.cfg.bulkJobs) {
			return fmt.Errorf("resqued enqueue --stdin printed %q, want %d", stdout.String(), b.cfg.bulkJobs)
		}
		if got, err := redis.Int(b.srv.do("LLEN", key)); err != nil || got != b.cfg.bulkJobs {
			return fmt.Errorf("after enqueue --stdin the queue holds %d jobs (%v)", got, err)
		}
		bulk = append(bulk, float64(b.cfg.bulkJobs)/wall.Seconds())
		progress("enqueue run %d/%d: single %.0f jobs/s, bulk %.0f jobs/s", run, b.cfg.runs, single[len(single)-1], bulk[len(bulk)-1])
	}
	if err := b.srv.flush(); err != nil {
		return err
	}
	b.rep.section("Enqueue")
	b.rep.add(row{name: fmt.Sprintf("resqued enqueue, one process per job, %s in a row (jobs/s)", num(float64(b.cfg.enqueueInvocations), 0)), vals: single, prec: 0})
	b.rep.add(row{name: fmt.Sprintf("resqued enqueue --stdin, %s jobs (jobs/s)", num(float64(b.cfg.bulkJobs), 0)), vals: bulk, prec: 0,
		target: "≥ 50,000", check: func(v float64) bool { return v >= 50000 }})
	return nil
}

// memSample is one memory run: per process (daemon first, then workers),
// VmRSS at 1k jobs, at the end, and VmHWM at the end, in MiB.
type memSample struct {
	at1k, atEnd, hwm []float64
	pss              float64 // all processes' PSS at the end, summed
}

// memoryRun drains cfg.memJobs jobs with an idle-capable daemon (default
// interval) and COUNT=count, sampling memory on the way.
func (b *bench) memoryRun(count int) (memSample, error) {
	n := b.cfg.memJobs
	first := min(1000, n)
	var s memSample
	if err := b.srv.flush(); err != nil {
		return s, err
	}
	if err := b.srv.preEnqueue("Noop", n); err != nil {
		return s, err
	}
	d, err := startDaemon(b.resqued, b.srv.url(), b.handlers, count, "")
	if err != nil {
		return s, err
	}
	defer d.quit()
	pids := []int{d.pid()}
	if count > 1 {
		var workers []int
		if err := waitFor(30*time.Second, time.Millisecond, "worker processes", func() (bool, error) {
			workers = children(d.pid())
			return len(workers) >= count, nil
		}); err != nil {
			return s, err
		}
		pids = append(pids, workers[:count]...)
	}
	sample := func(field string) ([]float64, error) {
		out := make([]float64, len(pids))
		for i, p := range pids {
			kib, err := statusKiB(p, field)
			if err != nil {
				return nil, err
			}
			out[i] = float64(kib) / 1024
		}
		return out, nil
	}
	processed := func(k int) func() (bool, error) {
		return func() (bool, error) {
			got, err := b.srv.getInt(queue.StatKey("resque", "processed"))
			return got >= k, err
		}
	}
	if err := waitFor(10*time.Minute, time.Millisecond, "1k jobs", processed(first)); err != nil {
		return s, err
	}
	if s.at1k, err = sample("VmRSS"); err != nil {
		return s, err
	}
	if err := waitFor(10*time.Minute, 2*time.Millisecond, "all jobs", processed(n)); err != nil {
		return s, err
	}
	if s.atEnd, err = sample("VmRSS"); err != nil {
		return s, err
	}
	if s.hwm, err = sample("VmHWM"); err != nil {
		return s, err
	}
	for _, p := range pids {
		kib, err := pssKiB(p)
		if err != nil {
			return s, err
		}
		s.pss += float64(kib) / 1024
	}
	if err := d.quit(); err != nil {
		return s, err
	}
	return s, b.srv.checkDrained(n)
}

func (b *bench) memory() error {
	n := b.cfg.memJobs
	type series struct{ at1k, atEnd, hwm, growth []float64 }
	one := make([]series, 1)
	two := make([]series, 3) // supervisor, worker 1, worker 2
	var perWorker2, pss2 []float64
	for run := 1; run <= b.cfg.runs; run++ {
		for _, count := range []int{1, 2} {
			s, err := b.memoryRun(count)
			if err != nil {
				return fmt.Errorf("memory COUNT=%d: %w", count, err)
			}
			dst := one
			if count == 2 {
				dst = two
				perWorker2 = append(perWorker2, (s.hwm[0]+s.hwm[1]+s.hwm[2])/2)
				pss2 = append(pss2, s.pss/2)
			}
			for i := range dst {
				dst[i].at1k = append(dst[i].at1k, s.at1k[i])
				dst[i].atEnd = append(dst[i].atEnd, s.atEnd[i])
				dst[i].hwm = append(dst[i].hwm, s.hwm[i])
				dst[i].growth = append(dst[i].growth, s.atEnd[i]-s.at1k[i])
			}
			progress("memory run %d/%d COUNT=%d: RSS at 1k %v MiB, at %d %v MiB, peak %v MiB", run, b.cfg.runs, count, mib(s.at1k), n, mib(s.atEnd), mib(s.hwm))
		}
	}
	b.rep.section(fmt.Sprintf("Memory while draining %s jobs (Noop handler, default interval)", num(float64(n), 0)))
	// peak is the VmHWM target in MiB; growth is targeted on workers only
	// (the supervisor runs no jobs).
	add := func(who string, s series, worker bool, peak float64) {
		b.rep.add(row{name: fmt.Sprintf("%s: RSS at %s jobs (MiB)", who, num(float64(min(1000, n)), 0)), vals: s.at1k, prec: 1})
		b.rep.add(row{name: fmt.Sprintf("%s: RSS at %s jobs (MiB)", who, num(float64(n), 0)), vals: s.atEnd, prec: 1})
		r := row{name: fmt.Sprintf("%s: RSS growth, %s → %s jobs (MiB)", who, num(float64(min(1000, n)), 0), num(float64(n), 0)), vals: s.growth, prec: 1}
		if worker {
			r.target, r.check = "flat (≤ 2)", atMost(2)
		}
		b.rep.add(r)
		b.rep.add(row{name: who + ": peak RSS, VmHWM (MiB)", vals: s.hwm, prec: 1,
			target: fmt.Sprintf("≤ %.0f", peak), check: atMost(peak)})
	}
	add("COUNT=1 daemon (the worker)", one[0], true, 16)
	add("COUNT=2 supervisor", two[0], false, 10)
	add("COUNT=2 worker 1", two[1], true, 16)
	add("COUNT=2 worker 2", two[2], true, 16)
	b.rep.add(row{name: "COUNT=2 supervisor + workers: sum of peak RSS, per worker (MiB)", vals: perWorker2, prec: 1,
		target: "≤ 20", check: atMost(20)})
	b.rep.add(row{name: fmt.Sprintf("COUNT=2 supervisor + workers: sum of PSS at %s jobs, per worker (MiB)", num(float64(n), 0)), vals: pss2, prec: 1})
	return nil
}

func mib(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// idleSample is one idle window of one daemon.
type idleSample struct {
	// Commands per second per worker that the daemon sent, all and
	// besides the heartbeat (TIME, HSET); commands per second per worker
	// Redis executed, including those inside the daemon's Lua scripts.
	sent, sentNoHB, executed float64
	cpuPct                   float64 // CPU of all its processes (utime+stime), % of one core
	onCPU                    float64 // the same from schedstat, ms per minute
	calls                    map[string]int64
}

// idleRun starts a daemon with COUNT=count and the default interval on
// srv, lets it settle into waiting, and counts the Redis commands it
// issues and the CPU it uses over the window.
func (b *bench) idleRun(srv *redisServer, count int) (idleSample, error) {
	var s idleSample
	if err := srv.flush(); err != nil {
		return s, err
	}
	if _, err := srv.do("SADD", queue.QueuesKey("resque"), benchQueue); err != nil {
		return s, err
	}
	d, err := startDaemon(b.resqued, srv.url(), b.handlers, count, "")
	if err != nil {
		return s, err
	}
	defer d.quit()
	if err := waitFor(30*time.Second, 5*time.Millisecond, "workers registered and waiting", func() (bool, error) {
		w, err := redis.Int(srv.do("SCARD", queue.WorkersKey("resque")))
		if err != nil {
			return false, err
		}
		k, err := srv.blockedClients()
		return w == count && k == count, err
	}); err != nil {
		return s, fmt.Errorf("%w; output:\n%s", err, d.stderr.String())
	}
	time.Sleep(200 * time.Millisecond)
	pids := []int{d.pid()}
	if count > 1 {
		pids = append(pids, children(d.pid())...) // the workers
	}
	ticks := func() (int64, error) {
		var t int64
		for _, p := range pids {
			n, err := cpuTicks(p)
			if err != nil {
				return 0, err
			}
			t += n
		}
		return t, nil
	}
	ns := func() time.Duration {
		var t time.Duration
		for _, p := range pids {
			n, _ := onCPU(p)
			t += n
		}
		return t
	}
	stopMonitor, err := srv.monitor()
	if err != nil {
		return s, err
	}
	calls0, err := srv.commandCalls()
	if err != nil {
		stopMonitor()
		return s, err
	}
	t0, err := ticks()
	if err != nil {
		stopMonitor()
		return s, err
	}
	ns0 := ns()
	start := time.Now()
	time.Sleep(b.cfg.idleWindow)
	ns1 := ns()
	t1, err := ticks()
	window := time.Since(start).Seconds()
	sent := stopMonitor()
	if err != nil {
		return s, err
	}
	calls1, err := srv.commandCalls()
	if err != nil {
		return s, err
	}
	var executed, total, hb int64
	for name, c := range calls1 {
		if name != "info" && name != "monitor" {
			executed += c - calls0[name]
		}
	}
	for name, c := range sent {
		total += c
		if name == "time" || name == "hset" { // the heartbeat
			hb += c
		}
	}
	perWorker := func(n int64) float64 { return float64(n) / window / float64(count) }
	s.sent, s.sentNoHB, s.executed = perWorker(total), perWorker(total-hb), perWorker(executed)
	s.calls = sent
	s.cpuPct = float64(t1-t0) / clockTicks / window * 100
	s.onCPU = ms(ns1-ns0) / window * 60
	return s, d.quit()
}

// idleCounts are the idle daemons watched at once, each on its own
// redis-server, and idleTargets their targets: Redis commands per second
// per worker, every command the daemon sent (the heartbeat included).
var (
	idleCounts  = []int{1, 2, 4}
	idleTargets = []float64{1, 1, 0.5}
)

func (b *bench) idle() error {
	// Every daemon idles at once, each on its own redis-server (the
	// first is the bench's own), so that the commands counted are each
	// one's own.
	servers := []*redisServer{b.srv}
	for len(servers) < len(idleCounts) {
		srv, err := startRedis(b.cfg.redisServer, b.tmp)
		if err != nil {
			return err
		}
		defer srv.stop()
		servers = append(servers, srv)
	}
	k := len(idleCounts)
	sent := make([][]float64, k)
	sentNoHB := make([][]float64, k)
	executed := make([][]float64, k)
	cpu := make([][]float64, k)
	onCPU := make([][]float64, k)
	calls := make([]map[string]int64, k)
	for run := 1; run <= b.cfg.runs; run++ {
		var wg sync.WaitGroup
		res := make([]idleSample, k)
		errs := make([]error, k)
		for i := range idleCounts {
			wg.Add(1)
			go func() { defer wg.Done(); res[i], errs[i] = b.idleRun(servers[i], idleCounts[i]) }()
		}
		wg.Wait()
		for i, count := range idleCounts {
			if errs[i] != nil {
				return fmt.Errorf("idle COUNT=%d: %w", count, errs[i])
			}
			sent[i] = append(sent[i], res[i].sent)
			sentNoHB[i] = append(sentNoHB[i], res[i].sentNoHB)
			executed[i] = append(executed[i], res[i].executed)
			cpu[i] = append(cpu[i], res[i].cpuPct)
			onCPU[i] = append(onCPU[i], res[i].onCPU)
			calls[i] = res[i].calls
			progress("idle run %d/%d COUNT=%d: %.2f commands/s per worker sent (%s), %.2f executed with Lua's; CPU %.2f%% (%.1f ms/min)", run, b.cfg.runs, count,
				res[i].sent, formatCalls(res[i].calls), res[i].executed, res[i].cpuPct, res[i].onCPU)
		}
	}
	b.rep.section(fmt.Sprintf("Idle daemon, default interval (5 s), %s window, rates per second over the window", b.cfg.idleWindow))
	// The heartbeat (TIME + HSET) comes once a minute per worker: a
	// window shorter than that holds one or none, by where it falls, and
	// the row's note says so rather than pretend to an average.
	hb := ""
	if b.cfg.idleWindow < time.Minute {
		hb = fmt.Sprintf("heartbeat HSETs at 1/60 s included as measured (a %s window holds one per worker or none); ", b.cfg.idleWindow)
	}
	for i, count := range idleCounts {
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d: Redis commands/s per worker, sent, everything (heartbeat included)", count), vals: sent[i], prec: 2,
			note: hb + "last run: " + formatCalls(calls[i]), target: "≤ " + strconv.FormatFloat(idleTargets[i], 'f', -1, 64), check: atMost(idleTargets[i])})
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d: Redis commands/s per worker, sent, besides heartbeat", count), vals: sentNoHB[i], prec: 2})
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d: Redis commands/s per worker, executed, counting those inside Lua scripts", count), vals: executed[i], prec: 2})
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d: CPU of all its processes, utime+stime (%% of one core)", count), vals: cpu[i], prec: 2})
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d: CPU of all its processes, schedstat (ms per minute)", count), vals: onCPU[i], prec: 1})
	}
	return nil
}

func formatCalls(m map[string]int64) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", strings.ToUpper(k), m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// atMost and atLeast are the checks of "≤ v" and "≥ v" targets.
func atMost(v float64) func(float64) bool  { return func(m float64) bool { return m <= v } }
func atLeast(v float64) func(float64) bool { return func(m float64) bool { return m >= v } }

// diff is a[i] - b[i], run by run.
func diff(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// quantiles returns p50, p99 and max of v (nearest rank).
func quantiles(v []float64) [3]float64 {
	s := append([]float64{}, v...)
	sort.Float64s(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.5) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return [3]float64{at(0.50), at(0.99), s[len(s)-1]}
}

// persistentTargets are the COUNT=2 throughput targets (jobs/s) of the
// persistent handlers.
var persistentTargets = map[string]float64{"PNoop": 14000, "PyNoop": 8000}

// persistent: resqued draining jobs into persistent handlers, compiled and
// Python, at each COUNT. There is no exec ceiling to compare with: no
// process is started per job. The compiled one is compared instead with
// the in-process Go drain (inprocess.go) of the same jobs, run right
// before it, run by run, as the throughput section pairs the ceiling and
// resqued.
func (b *bench) persistent() error {
	n := 5 * b.cfg.jobs
	for _, class := range []string{"PNoop", "PyNoop"} {
		b.rep.section(fmt.Sprintf("Persistent handler %s (%s jobs)", class, num(float64(n), 0)))
		type inproc struct{ rate, cpu, redisCPU, ratio []float64 }
		var in []inproc
		for _, par := range b.cfg.counts {
			var rate, cpu, redisCPU []float64
			var ip inproc
			for run := 1; run <= b.cfg.runs; run++ {
				var ir float64
				if class == "PNoop" {
					d, err := b.inprocessDrain(n, par)
					if err != nil {
						return fmt.Errorf("in-process Go ×%d: %w", par, err)
					}
					ir = float64(n) / d.wall.Seconds()
					ip.rate, ip.cpu, ip.redisCPU = append(ip.rate, ir), append(ip.cpu, ms(d.cpu)), append(ip.redisCPU, ms(d.redisCPU))
					progress("in-process run %d/%d ×%d: %.0f jobs/s (CPU %.3f ms + Redis %.3f ms per job)", run, b.cfg.runs, par, ir, ms(d.cpu), ms(d.redisCPU))
				}
				d, err := b.drain(class, n, par)
				if err != nil {
					return fmt.Errorf("resqued %s COUNT=%d: %w", class, par, err)
				}
				rr := float64(n) / d.wall.Seconds()
				rate, cpu, redisCPU = append(rate, rr), append(cpu, ms(d.cpu)), append(redisCPU, ms(d.redisCPU))
				if ir > 0 {
					ip.ratio = append(ip.ratio, rr/ir)
				}
				progress("persistent run %d/%d %s COUNT=%d: %.0f jobs/s (CPU %.3f ms + Redis %.3f ms per job)", run, b.cfg.runs, class, par, rr, ms(d.cpu), ms(d.redisCPU))
			}
			in = append(in, ip)
			r := row{name: fmt.Sprintf("resqued COUNT=%d (jobs/s)", par), vals: rate, prec: 0}
			if want := persistentTargets[class]; want > 0 && par == 2 {
				r.target, r.check = "≥ "+num(want, 0), atLeast(want)
			}
			b.rep.add(r)
			b.rep.add(row{name: fmt.Sprintf("resqued COUNT=%d: CPU per job, resqued + handler (ms)", par), vals: cpu, prec: 3})
			b.rep.add(row{name: fmt.Sprintf("resqued COUNT=%d: redis-server CPU per job (ms)", par), vals: redisCPU, prec: 3})
		}
		if class != "PNoop" {
			continue
		}
		b.rep.section(fmt.Sprintf("In-process Go drain (%s jobs), Ruby Resque's non-forking mode shape: P goroutine workers, resqued's Redis bookkeeping, a no-op Go function, no isolation", num(float64(n), 0)))
		for i, par := range b.cfg.counts {
			b.rep.add(row{name: fmt.Sprintf("in-process Go ×%d (jobs/s)", par), vals: in[i].rate, prec: 0})
			b.rep.add(row{name: fmt.Sprintf("in-process Go ×%d: CPU per job, the bench process (ms)", par), vals: in[i].cpu, prec: 3})
			b.rep.add(row{name: fmt.Sprintf("in-process Go ×%d: redis-server CPU per job (ms)", par), vals: in[i].redisCPU, prec: 3})
		}
		for i, par := range b.cfg.counts {
			b.rep.add(row{name: fmt.Sprintf("resqued persistent PNoop COUNT=%d / in-process Go ×%d", par, par), vals: in[i].ratio, prec: 2})
		}
	}
	return nil
}

// history: the per-job cost of the dashboard's history (issue 17), on
// the fastest path (the persistent no-op handler, where a fixed cost per
// job weighs most), the daemon with --history=false and with it on,
// interleaved pair by pair (in ABBA order) so that drift hits both alike.
func (b *bench) history() error {
	n := 5 * b.cfg.jobs
	const class = "PNoop"
	b.rep.section(fmt.Sprintf("History's per-job cost, persistent %s (%s jobs), --history=false and on, interleaved ABBA", class, num(float64(n), 0)))
	for _, par := range b.cfg.counts {
		var off, on, offCPU, onCPU, offRedis, onRedis, ratio []float64
		for run := 1; run <= b.cfg.runs; run++ {
			// ABBA: every other pair runs history on first, so that what
			// the second run of a pair inherits (a warm page cache, a
			// busier neighbour) weighs on both alike.
			var d0, d1 drainResult
			var err0, err1 error
			if run%2 == 1 {
				d0, err0 = b.drain(class, n, par, "RESQUED_HISTORY=false")
				d1, err1 = b.drain(class, n, par)
			} else {
				d1, err1 = b.drain(class, n, par)
				d0, err0 = b.drain(class, n, par, "RESQUED_HISTORY=false")
			}
			if err0 != nil {
				return fmt.Errorf("resqued %s COUNT=%d --history=false: %w", class, par, err0)
			}
			if err1 != nil {
				return fmt.Errorf("resqued %s COUNT=%d: %w", class, par, err1)
			}
			r0, r1 := float64(n)/d0.wall.Seconds(), float64(n)/d1.wall.Seconds()
			off, on, ratio = append(off, r0), append(on, r1), append(ratio, r1/r0)
			offCPU, onCPU = append(offCPU, ms(d0.cpu)), append(onCPU, ms(d1.cpu))
			offRedis, onRedis = append(offRedis, ms(d0.redisCPU)), append(onRedis, ms(d1.redisCPU))
			progress("history run %d/%d COUNT=%d: off %.0f jobs/s (CPU %.3f + Redis %.3f ms), on %.0f jobs/s (CPU %.3f + Redis %.3f ms), ratio %.3f",
				run, b.cfg.runs, par, r0, ms(d0.cpu), ms(d0.redisCPU), r1, ms(d1.cpu), ms(d1.redisCPU), r1/r0)
		}
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d --history=false (jobs/s)", par), vals: off, prec: 0})
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d history on (jobs/s)", par), vals: on, prec: 0})
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d: CPU per job, off (ms)", par), vals: offCPU, prec: 3})
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d: CPU per job, on (ms)", par), vals: onCPU, prec: 3})
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d: redis-server CPU per job, off (ms)", par), vals: offRedis, prec: 3})
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d: redis-server CPU per job, on (ms)", par), vals: onRedis, prec: 3})
		b.rep.add(row{name: fmt.Sprintf("COUNT=%d: history on / off (throughput ratio)", par), vals: ratio, prec: 3,
			target: "≥ 0.97", check: atLeast(0.97)})
	}
	return nil
}

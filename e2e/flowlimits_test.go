package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// stamp is one line a limited handler wrote: start or end, when (Unix
// ns, this machine's clock), which process and job.
type stamp struct {
	what string
	at   int64
	pid  int
	id   string
}

// stampBody is a handler that stamps its start and end into log around
// body.
func stampBody(log, body string) string {
	return `echo "start $(date +%s%N) $$ $RESQUE_JOB_ID" >> "` + log + `"
` + body + `
echo "end $(date +%s%N) $$ $RESQUE_JOB_ID" >> "` + log + `"`
}

func readStamps(t *testing.T, path string) []stamp {
	t.Helper()
	b, _ := os.ReadFile(path)
	var out []stamp
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 4 {
			continue
		}
		at, _ := strconv.ParseInt(f[1], 10, 64)
		pid, _ := strconv.Atoi(f[2])
		out = append(out, stamp{what: f[0], at: at, pid: pid, id: f[3]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at < out[j].at })
	return out
}

// mostAtOnce is the most handlers running at once by their own stamps.
func mostAtOnce(stamps []stamp) int {
	n, most := 0, 0
	for _, s := range stamps {
		if s.what == "start" {
			n++
		} else {
			n--
		}
		most = max(most, n)
	}
	return most
}

// writeConfig writes a handlers config file.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "handlers.yml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConcurrencyLimit_ManyHosts: three daemons on three host names
// (--hostname), two workers each, share one Redis; class Slow has
// concurrency 2. 30 Slow jobs interleaved with 30 unlimited Fast ones on
// one queue: never more than 2 Slow run at once (by the handlers' own
// start/end stamps, and by the slot set sampled from Redis), every job
// runs exactly once, and the Fast jobs are not held up behind the Slow
// backlog: they are all done before it drains.
func TestConcurrencyLimit_ManyHosts(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, tmp := t.TempDir(), t.TempDir()
	slowLog, fastLog := filepath.Join(tmp, "slow"), filepath.Join(tmp, "fast")
	handler(t, dir, "Slow", stampBody(slowLog, "sleep 0.2"))
	handler(t, dir, "Fast", `echo "$(date +%s%N) $RESQUE_JOB_ID" >> "`+fastLog+`"`)
	conf := writeConfig(t, "classes:\n  Slow:\n    concurrency: 2\n")
	for i := 0; i < 30; i++ {
		push(t, srv, "q", fmt.Sprintf(`{"class":"Slow","args":[%d],"id":"s%d"}`, i, i))
		push(t, srv, "q", fmt.Sprintf(`{"class":"Fast","args":[%d],"id":"f%d"}`, i, i))
	}
	// Sample the slot set while the jobs run.
	var mu sync.Mutex
	sampled, samples := 0, 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := srv.Pool(t).Get()
		defer c.Close()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			tm, err := redis.Int64s(c.Do("TIME"))
			if err != nil {
				continue
			}
			n, err := redis.Int(c.Do("ZCOUNT", queue.ConcurrencyKey(ns, "Slow"), fmt.Sprintf("(%d", tm[0]*1000+tm[1]/1000), "+inf"))
			if err == nil {
				mu.Lock()
				sampled, samples = max(sampled, n), samples+1
				mu.Unlock()
			}
		}
	}()
	for _, h := range []string{"lim-host1", "lim-host2", "lim-host3"} {
		startHost(t, h, srv.URL(), false, "--handlers", dir, "--queues", "q", "--count", "2", "--interval", "0.5", "--handlers-config", conf)
	}
	waitProcessed(t, srv, 60)
	close(stop)
	wg.Wait()

	stamps := readStamps(t, slowLog)
	runs := map[string]int{}
	var lastSlowEnd int64
	for _, s := range stamps {
		if s.what == "start" {
			runs[s.id]++
		} else {
			lastSlowEnd = s.at
		}
	}
	if most := mostAtOnce(stamps); most > 2 {
		t.Errorf("%d Slow handlers ran at once by their stamps, limit 2", most)
	} else if most < 2 {
		t.Errorf("at most %d Slow handler ran at once: the limit of 2 was never used", most)
	}
	mu.Lock()
	t.Logf("slot set sampled %d times, most held %d", samples, sampled)
	if sampled > 2 {
		t.Errorf("the slot set held %d slots at once, limit 2", sampled)
	}
	mu.Unlock()
	lastFast := countFastRuns(fastLog, runs)
	checkOnce(t, runs, 60)
	if lastFast >= lastSlowEnd {
		t.Errorf("the last Fast job ran %v after the Slow backlog drained: held up behind it", time.Duration(lastFast-lastSlowEnd))
	}
	if f := failures(t, srv); len(f) != 0 {
		t.Errorf("failures: %+v", f)
	}
	if n, _ := redis.Int(srv.Do(t, "ZCARD", queue.ConcurrencyKey(ns, "Slow")), nil); n != 0 {
		t.Errorf("%d slots still held once every job is done", n)
	}
}

// TestConcurrencyLimit_KilledHolder: a worker killed with -9 while its
// job holds the only slot of class Hold. The slot lapses within the
// lease (15 s, DefaultLeaseTTL) and the second Hold job runs; the
// orphan job is recovered and runs again. Tolerance: the second job
// starts within the lease TTL plus 10 s (the supervisor's reap, the
// waiting worker's next look).
func TestConcurrencyLimit_KilledHolder(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, tmp := t.TempDir(), t.TempDir()
	log, first := filepath.Join(tmp, "stamps"), filepath.Join(tmp, "first")
	// The first run ever holds on (to be killed); every other is quick.
	handler(t, dir, "Hold", stampBody(log, `if mkdir "`+first+`" 2>/dev/null; then sleep 300; fi`))
	conf := writeConfig(t, "classes:\n  Hold:\n    concurrency: 1\n")
	push(t, srv, "q", `{"class":"Hold","args":[1],"id":"h1"}`)
	push(t, srv, "q", `{"class":"Hold","args":[2],"id":"h2"}`)
	startArgs(t, srv, dir, []string{"COUNT=2"}, "-vv", "--queues", "q", "--interval", "0.5", "--handlers-config", conf)
	var pid int
	redistest.Eventually(t, 20*time.Second, func() bool { pid = holderPID(t, srv); return pid > 0 && len(readStamps(t, log)) == 1 }, "no worker holds the first job")
	if n, _ := redis.Int(srv.Do(t, "ZCARD", queue.ConcurrencyKey(ns, "Hold")), nil); n != 1 {
		t.Fatalf("slots held = %d, want 1", n)
	}
	out, _, code := cli(t, srv, "stats", "--handlers-config", conf)
	if code != 0 || !regexp.MustCompile(`(?m)^  Hold +concurrency 1/1 +waiting 1$`).MatchString(out) {
		t.Errorf("stats with the slot held (exit %d):\n%s", code, out)
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, 25*time.Second, func() bool {
		for _, s := range readStamps(t, log) {
			if s.what == "end" {
				return true
			}
		}
		return false
	}, "no other Hold job ran within the lease after the slot's holder was killed")
	t.Logf("another Hold job started %v after the holder was killed (lease TTL 15s)", time.Since(killed).Round(100*time.Millisecond))
	waitProcessed(t, srv, 2)
	runs := map[string]int{}
	for _, s := range readStamps(t, log) {
		if s.what == "end" {
			runs[s.id]++
		}
	}
	if runs["h1"] != 1 || runs["h2"] != 1 {
		t.Errorf("completed runs = %v, want h1 (recovered) and h2 once each", runs)
	}
	if most := mostAtOnce(readStamps(t, log)); most > 1 {
		t.Logf("note: %d Hold handlers overlapped by stamps: the killed worker's handler ran on until its supervisor stopped it", most)
	}
}

// TestRateLimit: class Mail at 5/s, 40 jobs, four workers. Over the
// first 4 s after the first start, the handlers' stamps count between 15
// and 22 starts (5/s × 4 s = 20, by the sliding window in Redis; the
// tolerance covers the gap between Redis's start time and the handler's
// own stamp, and the window's edges), and no 800 ms span of stamps
// holds more than 5 (a 1 s window in Redis, less up to 200 ms by which
// a handler's stamp lags its start there: the spawn, under -race).
func TestRateLimit(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, tmp := t.TempDir(), t.TempDir()
	log := filepath.Join(tmp, "stamps")
	handler(t, dir, "Mail", stampBody(log, ""))
	conf := writeConfig(t, "classes:\n  Mail:\n    rate: 5/s\n")
	for i := 0; i < 40; i++ {
		push(t, srv, "q", fmt.Sprintf(`{"class":"Mail","args":[%d],"id":"m%d"}`, i, i))
	}
	startArgs(t, srv, dir, []string{"COUNT=4"}, "--queues", "q", "--interval", "0.5", "--handlers-config", conf)
	redistest.Eventually(t, 30*time.Second, func() bool {
		st := readStamps(t, log)
		return len(st) > 0 && time.Since(time.Unix(0, st[0].at)) > 4500*time.Millisecond
	}, "Mail jobs never started")
	var starts []int64
	for _, s := range readStamps(t, log) {
		if s.what == "start" {
			starts = append(starts, s.at)
		}
	}
	in4 := 0
	for _, at := range starts {
		if at-starts[0] < int64(4*time.Second) {
			in4++
		}
	}
	t.Logf("%d starts in the first 4 s (5/s)", in4)
	if in4 < 15 || in4 > 22 {
		t.Errorf("%d starts in the first 4 s, want 15..22 (5/s)", in4)
	}
	for i, at := range starts {
		n := 0
		for _, b := range starts[i:] {
			if b-at < int64(800*time.Millisecond) {
				n++
			}
		}
		if n > 5 {
			t.Errorf("%d starts within 800 ms from the start at +%v, want at most 5", n, time.Duration(at-starts[0]))
			break
		}
	}
}

// TestConcurrencyLimit_MissingKey: a job whose args lack its class's
// concurrency_key runs, without that limit, and the worker's log says
// so; it is not failed (docs/handlers.md).
func TestConcurrencyLimit_MissingKey(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Report", `cat > /dev/null`)
	conf := writeConfig(t, "classes:\n  Report:\n    concurrency: 1\n    concurrency_key: args[0].customer_id\n")
	push(t, srv, "q", `{"class":"Report","args":[{"other":1}],"id":"r1"}`)
	d := start(t, srv, dir, "--queues", "q", "--interval", "0.5", "--handlers-config", conf)
	waitProcessed(t, srv, 1)
	if f := failures(t, srv); len(f) != 0 {
		t.Errorf("failures: %+v", f)
	}
	redistest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(d.out.String(), "it runs without that limit") && strings.Contains(d.out.String(), "args[0].customer_id")
	}, "no warning about the missing key in the log:\n%s", d.out.String())
}

// countFastRuns adds the runs of the "<unix ns> <job>" lines in the log
// at path to runs, and returns the time of the last one.
func countFastRuns(path string, runs map[string]int) (last int64) {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 {
			at, _ := strconv.ParseInt(f[0], 10, 64)
			last = max(last, at)
			runs[f[1]]++
		}
	}
	return last
}

// checkOnce fails t unless runs holds want distinct jobs, each run once.
func checkOnce(t *testing.T, runs map[string]int, want int) {
	t.Helper()
	if len(runs) != want {
		t.Errorf("%d distinct jobs ran, want %d", len(runs), want)
	}
	for id, n := range runs {
		if n != 1 {
			t.Errorf("job %s ran %d times", id, n)
		}
	}
}

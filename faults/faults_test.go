// Package faults is the fault-injection suite: it proves that every job
// enqueued ends exactly once as processed or failed, or is still queued,
// whatever is killed, restarted or thrown at resqued meanwhile.
//
// go test runs a short form (CI); make faults runs the full one:
//
//	FAULT_JOBS=2000 FAULT_ROUNDS=12 go test -v -run TestFaults ./faults/
package faults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
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
	"github.com/resqued/resqued/pkg/status"
)

const ns = "resque"

var resqued string

func TestMain(m *testing.M) {
	os.Exit(redistest.RunWithBinary(m, "github.com/resqued/resqued/cmd/resqued", &resqued))
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// kind of job n: most succeed, some fail, some hang until the timeout,
// some are not even JSON.
func kind(n int) string {
	switch {
	case n%50 == 7:
		return "malformed"
	case n%40 == 3:
		return "hang"
	case n%20 == 11:
		return "fail"
	}
	return "ok"
}

func jobID(n int) string { return fmt.Sprintf("job-%05d", n) }

type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func TestFaults(t *testing.T) {
	jobs := envInt("FAULT_JOBS", 300)
	rounds := envInt("FAULT_ROUNDS", 4)
	seed := int64(envInt("FAULT_SEED", int(time.Now().UnixNano()%1e9)))
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d (FAULT_SEED=%d reproduces the fault schedule)", seed, seed)

	srv := redistest.Start(t, redistest.Args("--appendonly", "yes", "--appendfsync", "always"))
	dir := t.TempDir()
	runs := filepath.Join(t.TempDir(), "runs.log")
	// Work logs "start n" and, on success, "end n"; each line is one
	// small O_APPEND write, so lines never interleave.
	script := `#!/bin/sh
args=$(cat)
n=$(echo "$args" | tr -dc '0-9,' | cut -d, -f1)
mode=$(echo "$args" | tr -dc 'a-z')
echo "start $n" >> "` + runs + `"
case "$mode" in
  hang) exec sleep 1000 ;;
  fail) echo "job $n fails on purpose" >&2; exit 3 ;;
esac
sleep 0.0$((n % 3))
echo "end $n" >> "` + runs + `"
`
	if err := os.WriteFile(filepath.Join(dir, "Work"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	// Enqueue every job as a tracked job, across three queues.
	pool := srv.Pool(t)
	c := queue.New(pool, ns)
	ctx := context.Background()
	queues := []string{"high", "default", "low"}
	for n := 0; n < jobs; n++ {
		q := queues[n%3]
		var payload []byte
		if kind(n) == "malformed" {
			payload = []byte(fmt.Sprintf(`{"class":"Work","args":[%d,"malformed"` /* no closing */, n))
			if err := c.Enqueue(ctx, q, payload, queue.EnqueueOptions{}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		payload, _ = queue.Encode("Work", []byte(fmt.Sprintf(`[%d,"%s"]`, n, kind(n))), jobID(n))
		if err := c.Enqueue(ctx, q, payload, queue.EnqueueOptions{Track: true, ID: jobID(n)}); err != nil {
			t.Fatal(err)
		}
	}

	var logMu sync.Mutex
	var logBuf bytes.Buffer
	start := func() *daemon {
		cmd := exec.Command(resqued, "--redis", srv.URL(), "--handlers", dir, "--queues", "high,default,low",
			"--timeout", "1", "--term-timeout", "0.3", "--interval", "0.5", "-v")
		cmd.Env = append(os.Environ(), "COUNT=2")
		w := &lockedWriter{mu: &logMu, w: &logBuf}
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		d := &daemon{cmd: cmd, done: make(chan struct{})}
		go func() { cmd.Wait(); close(d.done) }()
		return d
	}
	exited := func(d *daemon, within time.Duration) bool {
		select {
		case <-d.done:
			return true
		case <-time.After(within):
			return false
		}
	}
	// killAll SIGKILLs the supervisor and every worker process, as a
	// machine crash or an OOM kill of the whole service would.
	killAll := func(d *daemon) {
		ids, _ := c.Workers(ctx)
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		for _, id := range ids {
			if _, pid, _, err := queue.ParseWorkerID(id); err == nil && isChild(pid, d.cmd.Process.Pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		<-d.done
	}
	progress := func() int {
		n, _ := redis.Int(srv.Do(t, "GET", queue.StatKey(ns, "processed")), nil)
		return n
	}

	counts := map[string]int{}
	d := start()
	deadline := time.Now().Add(10 * time.Minute)
	for r := 0; r < rounds && time.Now().Before(deadline); r++ {
		// Let some work happen, then strike.
		target := progress() + 1 + rng.Intn(max(jobs/(rounds*2), 2))
		redistest.Eventually(t, 3*time.Minute, func() bool { return progress() >= target || queuesEmpty(t, srv, queues) }, "no progress before fault %d", r)
		switch f := []string{"kill -9", "redis restart", "TERM", "USR1"}[r%4]; f {
		case "kill -9":
			killAll(d)
			counts[f]++
			d = start()
		case "redis restart":
			srv.Restart()
			counts[f]++
		case "TERM":
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			if !exited(d, time.Minute) {
				t.Fatal("daemon did not exit after TERM")
			}
			counts[f]++
			d = start()
		case "USR1":
			_ = d.cmd.Process.Signal(syscall.SIGUSR1)
			counts[f]++
		}
	}
	// Drain: wait until every queue is empty and no worker holds a job.
	redistest.Eventually(t, 5*time.Minute, func() bool { return queuesEmpty(t, srv, queues) && inFlight(t, srv) == 0 }, "jobs never drained")
	_ = d.cmd.Process.Signal(syscall.SIGQUIT)
	if !exited(d, time.Minute) {
		t.Fatal("daemon did not exit after QUIT")
	}

	// Account for every job.
	starts, ends := readRuns(t, runs)
	failedByID := map[string]int{}
	malformedFailed := 0
	fs, err := c.Failures(ctx, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		j, err := queue.Decode(f.Queue, f.Payload)
		if err == nil && j.ID != "" {
			failedByID[j.ID]++
			continue
		}
		if f.Exception == "Resqued::InvalidPayload" {
			malformedFailed++
		}
	}
	tr := status.New(pool, ns)
	var completed, failed, queued, lost, duplicated, doubleOutcome, malformed int
	var lostIDs []string
	for n := 0; n < jobs; n++ {
		if kind(n) == "malformed" {
			malformed++
			continue
		}
		id := jobID(n)
		st, err := tr.Get(ctx, id)
		if starts[n] > 1 {
			duplicated++
		}
		switch {
		case err == nil && st.Code == status.Complete:
			completed++
			if failedByID[id] > 0 || ends[n] == 0 {
				doubleOutcome++
				t.Errorf("%s complete but failed %d times, ended %d times", id, failedByID[id], ends[n])
			}
		case err == nil && st.Code == status.Failed:
			failed++
			if failedByID[id] != 1 {
				doubleOutcome++
				t.Errorf("%s failed, with %d failure records", id, failedByID[id])
			}
		case err == nil && st.Code == status.Waiting && inQueue(t, srv, queues, id):
			queued++
		default:
			lost++
			lostIDs = append(lostIDs, fmt.Sprintf("%s(status %v %v)", id, st.Code, err))
		}
	}
	logMu.Lock()
	requeued := strings.Count(logBuf.String(), "outcome=\"job requeued\"")
	logMu.Unlock()
	processed := progress()
	failedStat, _ := redis.Int(srv.Do(t, "GET", queue.StatKey(ns, "failed")), nil)

	faultNames := []string{"kill -9", "redis restart", "TERM", "USR1"}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| faults injected | jobs enqueued | completed | failed | malformed (failed) | requeued from dead workers | still queued | run twice (after a kill) | lost |\n|---|---|---|---|---|---|---|---|---|\n")
	var fl []string
	for _, f := range faultNames {
		fl = append(fl, fmt.Sprintf("%d %s", counts[f], f))
	}
	fmt.Fprintf(&b, "| %s | %d | %d | %d | %d (%d) | %d | %d | %d | %d |\n", strings.Join(fl, ", "), jobs, completed, failed, malformed, malformedFailed, requeued, queued, duplicated, lost)
	fmt.Fprintf(&b, "stat:processed %d (= completed+failed+malformed: %d), stat:failed %d (= failed+malformed: %d)\n",
		processed, completed+failed+malformed, failedStat, failed+malformed)
	t.Log(b.String())
	fmt.Print(b.String())

	if lost != 0 {
		sort.Strings(lostIDs)
		t.Errorf("%d jobs lost: %v", lost, lostIDs[:min(len(lostIDs), 20)])
	}
	if malformedFailed != malformed {
		t.Errorf("%d malformed jobs, %d malformed failure records", malformed, malformedFailed)
	}
	if processed != completed+failed+malformed || failedStat != failed+malformed {
		t.Errorf("stats count an outcome twice or not at all")
	}
	if doubleOutcome != 0 {
		t.Errorf("%d jobs with more than one recorded outcome", doubleOutcome)
	}
	if t.Failed() {
		logMu.Lock()
		path := filepath.Join(os.TempDir(), fmt.Sprintf("resqued-faults-%d.log", seed))
		_ = os.WriteFile(path, logBuf.Bytes(), 0o644)
		t.Logf("daemon log tail (whole log in %s):\n%s", path, tail(logBuf.String(), 40))
		logMu.Unlock()
	}
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

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func isChild(pid, parent int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 2 && f[1] == strconv.Itoa(parent)
}

func queuesEmpty(t *testing.T, srv *redistest.Server, queues []string) bool {
	for _, q := range queues {
		if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, q)), nil); n > 0 {
			return false
		}
	}
	return true
}

// inFlight counts workers holding a job (not a paused marker).
func inFlight(t *testing.T, srv *redistest.Server) int {
	keys, _ := redis.Strings(srv.Do(t, "KEYS", queue.WorkerKey(ns, "*")), nil)
	n := 0
	for _, k := range keys {
		if strings.HasSuffix(k, ":started") {
			continue
		}
		n++
	}
	return n
}

func inQueue(t *testing.T, srv *redistest.Server, queues []string, id string) bool {
	for _, q := range queues {
		items, _ := redis.Strings(srv.Do(t, "LRANGE", queue.QueueKey(ns, q), 0, -1), nil)
		for _, it := range items {
			if strings.Contains(it, `"`+id+`"`) {
				return true
			}
		}
	}
	return false
}

func readRuns(t *testing.T, path string) (starts, ends map[int]int) {
	starts, ends = map[int]int{}, map[int]int{}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		n, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		if fields[0] == "start" {
			starts[n]++
		} else {
			ends[n]++
		}
	}
	return starts, ends
}

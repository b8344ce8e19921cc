package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/redisurl"
	"github.com/resqued/resqued/pkg/status"
)

// clusterNS is the hash-tagged namespace: every key in one slot.
const clusterNS = "{resque}"

// clusterRig is the daemon-on-Cluster setup: a real 3-master, 3-replica
// cluster, a handlers directory whose handlers log each run, and
// helpers that run resqued against it.
type clusterRig struct {
	t    *testing.T
	cl   *redistest.Cluster
	slot int
	dir  string
	runs string // the handlers' run log: "<job id> <unix time>" per run
}

func newClusterRig(t *testing.T) *clusterRig {
	r := &clusterRig{t: t, cl: redistest.StartCluster(t), slot: redisurl.HashSlot(clusterNS), dir: t.TempDir()}
	r.runs = filepath.Join(r.dir, "runs.log")
	logRun := `echo "$RESQUE_JOB_ID $(date +%s.%N)" >> ` + r.runs
	handler(t, r.dir, "Ok", logRun+"\nexit 0")
	handler(t, r.dir, "Fail", logRun+"\necho boom >&2\nexit 1")
	// Fails with "retry me later" on its first attempt.
	handler(t, r.dir, "Flaky", logRun+"\n[ \"$RESQUE_ATTEMPT\" = 1 ] && exit 75\nexit 0")
	return r
}

// cli runs a resqued subcommand on the cluster.
func (r *clusterRig) cli(args ...string) (string, string, int) {
	r.t.Helper()
	cmd := exec.Command(resqued, args...)
	cmd.Env = append(os.Environ(), "REDIS_URL="+r.cl.URL(), "RESQUE_NAMESPACE="+clusterNS, noRaceExitSleep)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func (r *clusterRig) mustCLI(args ...string) string {
	r.t.Helper()
	out, errOut, code := r.cli(args...)
	if code != 0 {
		r.t.Fatalf("resqued %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

// start runs the daemon on the cluster.
func (r *clusterRig) start(args ...string) *daemon {
	r.t.Helper()
	all := append([]string{"--redis", r.cl.URL(), "--namespace", clusterNS, "--handlers", r.dir, "-v", "--interval", "0.5"}, args...)
	cmd := exec.Command(resqued, all...)
	cmd.Env = append(os.Environ(), noRaceExitSleep)
	return launch(r.t, cmd, "resqued")
}

// runCounts reads the run log: how often each job id ran, and when
// each run started.
func (r *clusterRig) runCounts() (map[string]int, map[string]float64) {
	counts, at := map[string]int{}, map[string]float64{}
	f, err := os.Open(r.runs)
	if os.IsNotExist(err) {
		return counts, at
	}
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 2 {
			continue
		}
		counts[fs[0]]++
		at[fs[0]], _ = strconv.ParseFloat(fs[1], 64)
	}
	return counts, at
}

// get reads an integer key from the slot's master.
func (r *clusterRig) getInt(key string) int {
	n, _ := redis.Int(r.cl.Do(r.slot, "GET", key), nil)
	return n
}

// The daemon and the CLI on a real Redis Cluster with a hash-tagged
// namespace: queues (with the * list), failures, retries, delayed jobs,
// statuses, stats and workers all work.
func TestCluster_Daemon(t *testing.T) {
	r := newClusterRig(t)
	// An untagged namespace is refused with a sentence naming the fix.
	_, errOut, code := r.cli("stats", "--namespace", "resque")
	if code == 0 || !strings.Contains(errOut, "--namespace '{resque}'") {
		t.Errorf("untagged namespace on a cluster: exit %d, stderr %q", code, errOut)
	}
	retry := filepath.Join(r.dir, "retry.yml")
	if err := os.WriteFile(retry, []byte("classes:\n  Flaky:\n    attempts: 2\n    backoff: fixed\n    delay: 1\n    jitter: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.start("--queues", "*", "--retry-config", retry)

	tok := strings.TrimSpace(r.mustCLI("enqueue", "--queue", "a", "--track", "Ok", "1"))
	failTok := strings.TrimSpace(r.mustCLI("enqueue", "--queue", "b", "--track", "Fail", "2"))
	flakyTok := strings.TrimSpace(r.mustCLI("enqueue", "--queue", "c", "--track", "Flaky", "3"))
	laterTok := strings.TrimSpace(r.mustCLI("enqueue", "--queue", "d", "--track", "--in", "1s", "Ok", "4"))
	for _, want := range []struct{ tok, state string }{{tok, "complete"}, {failTok, "failed"}, {flakyTok, "complete"}, {laterTok, "complete"}} {
		redistest.Eventually(t, 60*time.Second, func() bool {
			out, _, _ := r.cli("status", want.tok)
			return strings.HasPrefix(strings.TrimSpace(out), want.state)
		}, "job %s never became %s", want.tok, want.state)
	}
	counts, _ := r.runCounts()
	for id, n := range map[string]int{tok: 1, failTok: 1, flakyTok: 2, laterTok: 1} {
		if counts[id] != n {
			t.Errorf("job %s ran %d times, want %d", id, counts[id], n)
		}
	}
	// What Redis recorded, read from the slot's master.
	if got := r.getInt(queue.StatKey(clusterNS, "processed")); got != 5 {
		t.Errorf("stat:processed = %d, want 5 (four jobs, one retried once)", got)
	}
	if got := r.getInt(queue.StatKey(clusterNS, "failed")); got != 1 {
		t.Errorf("stat:failed = %d, want 1", got)
	}
	qs, _ := redis.Strings(r.cl.Do(r.slot, "SMEMBERS", queue.QueuesKey(clusterNS)), nil)
	if len(qs) != 4 {
		t.Errorf("queues set = %v, want a b c d", qs)
	}
	if v, _ := redis.String(r.cl.Do(r.slot, "GET", status.Key(clusterNS, tok)), nil); !strings.Contains(v, `"status":4`) {
		t.Errorf("status key of %s = %s, want complete (4)", tok, v)
	}
	// The CLI's views.
	if out := r.mustCLI("stats"); !strings.Contains(out, "5") || !strings.Contains(out, "processed") {
		t.Errorf("stats:\n%s", out)
	}
	if out := r.mustCLI("failed", "list"); !strings.Contains(out, "Fail") {
		t.Errorf("failed list:\n%s", out)
	}
	if out := r.mustCLI("workers"); !strings.Contains(out, "a,b,c,d") && !strings.Contains(out, "*") {
		t.Errorf("workers:\n%s", out)
	}
}

// streamJobs enqueues n jobs "<prefix>-<i>" onto queue stream, one every
// gap, retrying an enqueue until it succeeds. An enqueue that failed and
// was retried may have been applied twice (its reply lost): those ids
// are returned in maybeTwice.
func streamJobs(t *testing.T, pool *redis.Pool, prefix string, n int, gap time.Duration, enqueued chan<- int) (ids []string, maybeTwice map[string]bool) {
	c := queue.New(pool, clusterNS)
	maybeTwice = map[string]bool{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		p := fmt.Sprintf(`{"class":"Ok","args":[%d],"id":"%s"}`, i, id)
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := c.Enqueue(context.Background(), "stream", []byte(p), queue.EnqueueOptions{})
			if err == nil {
				break
			}
			// MOVED, CLUSTERDOWN and a refused dial mean the
			// transaction never ran; a reset connection may hide one
			// that did.
			if msg := err.Error(); !strings.Contains(msg, "MOVED") && !strings.Contains(msg, "dial") && !strings.Contains(msg, "CLUSTERDOWN") {
				if !maybeTwice[id] {
					t.Logf("enqueue %s may have been applied: %v", id, err)
				}
				maybeTwice[id] = true
			}
			if time.Now().After(deadline) {
				t.Errorf("enqueue %s: still failing after 60s: %v", id, err)
				return ids, maybeTwice
			}
			time.Sleep(50 * time.Millisecond)
		}
		ids = append(ids, id)
		enqueued <- i
		time.Sleep(gap)
	}
	close(enqueued)
	return ids, maybeTwice
}

// A stream of jobs across a failover of the namespace's slot: CLUSTER
// FAILOVER (the replica takes over in agreement with its master), then
// kill -9 of the master (its replica takes over after
// cluster-node-timeout). Every job must run and be recorded once.
func TestCluster_Failover(t *testing.T) {
	for _, mode := range []string{"ClusterFailover", "KillMaster"} {
		t.Run(mode, func(t *testing.T) {
			r := newClusterRig(t)
			r.start("--queues", "stream", "--count", "2")
			pool, err := redisurl.NewPool(r.cl.URL(), redisurl.Options{Namespace: clusterNS, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			const jobs = 200
			enqueued := make(chan int, jobs)
			var ids []string
			var maybeTwice map[string]bool
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids, maybeTwice = streamJobs(t, pool.Pool, mode, jobs, 10*time.Millisecond, enqueued)
			}()
			// Fail over once a third of the stream is in and running.
			for i := range enqueued {
				if i == jobs/3 {
					break
				}
			}
			redistest.Eventually(t, 30*time.Second, func() bool {
				return r.getInt(queue.StatKey(clusterNS, "processed")) > 0
			}, "no job ran before the failover")
			sh := r.cl.Shard(r.slot)
			t0 := time.Now()
			switch mode {
			case "ClusterFailover":
				old, nu := r.cl.Failover(r.slot)
				t.Logf("CLUSTER FAILOVER: slot %d from %s to %s, agreed after %.2fs", r.slot, old, nu, time.Since(t0).Seconds())
			case "KillMaster":
				r.cl.Node(sh.Master).Stop() // SIGKILL
				now := r.cl.WaitSwitch(r.slot, sh.Master, 60*time.Second)
				t.Logf("kill -9 of %s: slot %d taken over by %s after %.2fs (cluster-node-timeout %s)",
					sh.Master, r.slot, now, time.Since(t0).Seconds(), redistest.ClusterNodeTimeout)
			}
			p0 := r.getInt(queue.StatKey(clusterNS, "processed"))
			redistest.Eventually(t, 60*time.Second, func() bool {
				return r.getInt(queue.StatKey(clusterNS, "processed")) > p0
			}, "no job was recorded on the new master")
			t.Logf("%s: work resumed (stat:processed grew on the new master) %.2fs after the failover began", mode, time.Since(t0).Seconds())
			wg.Wait()
			if len(ids) != jobs {
				t.Fatalf("only %d of %d jobs were enqueued", len(ids), jobs)
			}
			redistest.Eventually(t, 120*time.Second, func() bool {
				counts, _ := r.runCounts()
				for _, id := range ids {
					if counts[id] == 0 {
						return false
					}
				}
				n, _ := redis.Int(r.cl.Do(r.slot, "LLEN", queue.QueueKey(clusterNS, "stream")), nil)
				return n == 0
			}, "not every job ran")
			// The job-by-job verdict.
			counts, _ := r.runCounts()
			lost, twice := 0, 0
			for _, id := range ids {
				switch n := counts[id]; {
				case n == 0:
					lost++
					t.Errorf("job %s never ran", id)
				case n > 1 && !maybeTwice[id]:
					twice++
					t.Errorf("job %s ran %d times", id, n)
				}
			}
			redistest.Eventually(t, 30*time.Second, func() bool {
				return r.getInt(queue.StatKey(clusterNS, "processed")) >= jobs
			}, "stat:processed stayed below %d", jobs)
			processed := r.getInt(queue.StatKey(clusterNS, "processed"))
			if processed != jobs+len(maybeTwice) && processed != jobs {
				t.Errorf("stat:processed = %d, want %d (each job recorded once)", processed, jobs)
			}
			t.Logf("%s: %d jobs, lost %d, ran twice %d, ambiguous enqueues %d, stat:processed %d",
				mode, jobs, lost, twice, len(maybeTwice), processed)
		})
	}
}

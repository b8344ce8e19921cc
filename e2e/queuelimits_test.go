package e2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// TestConcurrencyLimit_Queue: one daemon with three workers and queue
// reports limited to 1 (queues: in the handlers config). Six Slow jobs
// on reports never overlap by their handlers' own start/end stamps,
// while the jobs on queue other keep running meanwhile (all done before
// the reports backlog drains); every job runs exactly once, and no slot
// is left held.
func TestConcurrencyLimit_Queue(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, tmp := t.TempDir(), t.TempDir()
	slowLog, fastLog := filepath.Join(tmp, "slow"), filepath.Join(tmp, "fast")
	handler(t, dir, "Slow", stampBody(slowLog, "sleep 0.3"))
	handler(t, dir, "Fast", `echo "$(date +%s%N) $RESQUE_JOB_ID" >> "`+fastLog+`"`)
	conf := writeConfig(t, "queues:\n  reports:\n    concurrency: 1\n")
	for i := 0; i < 6; i++ {
		push(t, srv, "reports", fmt.Sprintf(`{"class":"Slow","args":[%d],"id":"s%d"}`, i, i))
	}
	for i := 0; i < 6; i++ {
		push(t, srv, "other", fmt.Sprintf(`{"class":"Fast","args":[%d],"id":"f%d"}`, i, i))
	}
	start(t, srv, dir, "--queues", "reports,other", "--count", "3", "--interval", "0.5", "--handlers-config", conf)
	waitProcessed(t, srv, 12)

	stamps := readStamps(t, slowLog)
	runs := map[string]int{}
	pids := map[int]bool{}
	var lastSlowEnd int64
	for _, s := range stamps {
		if s.what == "start" {
			runs[s.id]++
			pids[s.pid] = true
		} else {
			lastSlowEnd = s.at
		}
	}
	if most := mostAtOnce(stamps); most != 1 {
		t.Errorf("%d jobs of queue reports ran at once by their stamps, limit 1", most)
	}
	t.Logf("Slow ran in %d processes", len(pids))
	lastFast := countFastRuns(fastLog, runs)
	checkOnce(t, runs, 12)
	if lastFast >= lastSlowEnd {
		t.Errorf("the last job of queue other ran after the reports backlog drained: held up behind it")
	}
	if f := failures(t, srv); len(f) != 0 {
		t.Errorf("failures: %+v", f)
	}
	if n, _ := redis.Int(srv.Do(t, "ZCARD", queue.QueueConcurrencyKey(ns, "reports")), nil); n != 0 {
		t.Errorf("%d slots of queue reports still held once every job is done", n)
	}
}

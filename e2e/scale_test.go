package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// TestScale_ExactlyOnce: 10,000 jobs on three queues drained by COUNT=4
// are each run exactly once, and the stats say so. The handler is a
// persistent one, so the test measures resqued's paths, not fork+exec.
func TestScale_ExactlyOnce(t *testing.T) {
	t.Parallel()
	const jobs = 10000
	srv := redistest.Start(t)
	dir := t.TempDir()
	runs := filepath.Join(t.TempDir(), "runs")
	handler(t, dir, "Mark.persistent", `while IFS= read -r line; do
  echo "$line" >> "`+runs+`"
  echo '{"done":"ok"}' >&3
done`)
	c := queue.New(srv.Pool(t), ns)
	conn := srv.Pool(t).Get()
	defer conn.Close()
	queues := []string{"a", "b", "c"}
	for i := 0; i < jobs; i++ {
		q := queues[i%3]
		p, _ := queue.Encode("Mark", []byte(fmt.Sprintf(`[%d]`, i)), fmt.Sprintf("j%05d", i))
		conn.Send("RPUSH", queue.QueueKey(ns, q), p)
	}
	for _, q := range queues {
		conn.Send("SADD", queue.QueuesKey(ns), q)
	}
	if _, err := conn.Do(""); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := startEnv(t, srv, dir, []string{"COUNT=4"}, "--queues", "a,b,c", "--log-level", "warn")
	redistest.Eventually(t, 3*time.Minute, func() bool { return getInt(t, srv, queue.StatKey(ns, "processed")) >= jobs }, "10,000 jobs not processed")
	t.Logf("10,000 jobs in %s with COUNT=4 (race build)", time.Since(start).Round(time.Millisecond))

	f, err := os.Open(runs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		i := strings.Index(sc.Text(), `"id":"`)
		seen[sc.Text()[i+6:i+12]]++
	}
	twice := 0
	for _, n := range seen {
		if n > 1 {
			twice++
		}
	}
	if len(seen) != jobs || twice != 0 {
		t.Errorf("%d distinct jobs ran (want %d), %d more than once", len(seen), jobs, twice)
	}
	if got := getInt(t, srv, queue.StatKey(ns, "processed")); got != jobs {
		t.Errorf("stat:processed = %d", got)
	}
	if got := getInt(t, srv, queue.StatKey(ns, "failed")); got != 0 {
		t.Errorf("stat:failed = %d", got)
	}
	// Per-worker counters add up too.
	ids, _ := c.Workers(context.Background())
	sum := 0
	for _, id := range ids {
		sum += getInt(t, srv, queue.WorkerStatKey(ns, "processed", id))
	}
	if len(ids) != 4 || sum != jobs {
		t.Errorf("%d workers processed %d jobs between them", len(ids), sum)
	}
	_ = d
}

// TestScale_PriorityWithBlockingWait: a high-priority job pushed while
// low-priority jobs are queued runs next, and one pushed to an idle
// worker waiting on several queues is picked up at once.
func TestScale_PriorityWithBlockingWait(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, gate := t.TempDir(), t.TempDir()
	order := filepath.Join(t.TempDir(), "order")
	handler(t, dir, "Step", `n=$(tr -dc 0-9a-z); echo "$n" >> "`+order+`"; while [ ! -e "`+gate+`/$n" ]; do sleep 0.01; done`)
	start(t, srv, dir, "--queues", "high,low", "--interval", "30")
	// Idle, blocked on both queues: a push to low wakes it at once.
	redistest.Eventually(t, 30*time.Second, func() bool {
		s, _ := redis.String(srv.Do(t, "INFO", "clients"), nil)
		return strings.Contains(s, "blocked_clients:2\r")
	}, "worker never blocked on both queues")
	push(t, srv, "low", `{"class":"Step","args":["l1"]}`)
	redistest.Eventually(t, 10*time.Second, func() bool { b, _ := os.ReadFile(order); return string(b) == "l1\n" }, "low job not picked up from an idle wait (interval is 30 s)")
	// While l1 runs, more low jobs queue up; then a high one arrives.
	push(t, srv, "low", `{"class":"Step","args":["l2"]}`)
	push(t, srv, "low", `{"class":"Step","args":["l3"]}`)
	push(t, srv, "high", `{"class":"Step","args":["h1"]}`)
	for _, n := range []string{"l1", "h1", "l2", "l3"} {
		os.WriteFile(filepath.Join(gate, n), nil, 0o644)
	}
	waitProcessed(t, srv, 4)
	if b, _ := os.ReadFile(order); string(b) != "l1\nh1\nl2\nl3\n" {
		t.Errorf("order = %q, want the high job right after the running one", b)
	}
}

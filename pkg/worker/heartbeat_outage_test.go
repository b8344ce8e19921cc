package worker_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/status"
	"github.com/resqued/resqued/pkg/worker"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var line = regexp.MustCompile(`\[(DEBUG|INFO|WARN|ERROR)\]\s+([\w.-]+): (.*)$`)

// hbLines counts the lines of the worker's loggers ("w" and below) at one
// of levels that are about the heartbeat or pruning and contain want.
func hbLines(out, want string, levels ...string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil || (m[2] != "w" && !strings.HasPrefix(m[2], "w.")) || !strings.Contains(m[3], want) {
			continue
		}
		if !strings.Contains(l, "heartbeat") && !strings.Contains(l, "prune") {
			continue
		}
		for _, lv := range levels {
			if m[1] == lv {
				n++
			}
		}
	}
	return n
}

// TestWorker_HeartbeatOutage: while Redis is away the heartbeat and prune
// loop tries on every tick but logs one line when the outage starts and
// one when it ends.
func TestWorker_HeartbeatOutage(t *testing.T) {
	srv := redistest.Start(t)
	pool := srv.Pool(t)
	ns := redistest.Namespace(t)
	run, err := runner.New(runner.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	w, err := worker.New(worker.Config{
		Queue: queue.New(pool, ns), Status: status.New(pool, ns), Runner: run,
		Queues:            []string{"hb"},
		Interval:          time.Second,
		HeartbeatInterval: 20 * time.Millisecond,
		PruneInterval:     50 * time.Millisecond,
		Logger:            hclog.New(&hclog.LoggerOptions{Name: "w", Output: &out, Level: hclog.Debug}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("log:\n%s", out.String())
		}
	})
	redistest.Eventually(t, 10*time.Second, func() bool {
		n, _ := srv.Do(t, "HEXISTS", queue.HeartbeatKey(ns), w.ID()).(int64)
		return n == 1
	}, "no heartbeat written")

	srv.Stop()
	// The heartbeat and prune have failed several times over.
	redistest.Eventually(t, 10*time.Second, func() bool {
		return hbLines(out.String(), "error=", "DEBUG", "INFO", "WARN", "ERROR") >= 5
	}, "the heartbeat loop did not keep trying")
	if n := hbLines(out.String(), "", "WARN", "ERROR"); n != 1 {
		t.Errorf("the heartbeat loop logged %d warning or error lines during the outage, want 1", n)
	}
	srv.Restart()
	redistest.Eventually(t, 10*time.Second, func() bool {
		return hbLines(out.String(), "redis reachable again", "INFO") >= 1
	}, "the heartbeat loop never said Redis is back")
	// Two good heartbeats later, still one line each way.
	for i := 0; i < 2; i++ {
		srv.Do(t, "HDEL", queue.HeartbeatKey(ns), w.ID())
		redistest.Eventually(t, 10*time.Second, func() bool {
			n, _ := srv.Do(t, "HEXISTS", queue.HeartbeatKey(ns), w.ID()).(int64)
			return n == 1
		}, "no heartbeat after the restart")
	}
	o := out.String()
	if n := hbLines(o, "redis reachable again", "INFO"); n != 1 {
		t.Errorf("\"redis reachable again\" logged %d times by the heartbeat loop, want 1", n)
	}
	if n := hbLines(o, "", "WARN", "ERROR"); n != 1 {
		t.Errorf("the heartbeat loop logged %d warning or error lines for the outage and after, want 1", n)
	}
}

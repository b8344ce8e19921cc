package delayed_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/delayed"
	"github.com/resqued/resqued/pkg/queue"
)

// runScheduler runs a Scheduler with maxIdle until the test ends (or
// the returned stop is called, which waits for Run to return), and waits
// until its first pass is done and it is blocked waiting.
func runScheduler(t *testing.T, srv *redistest.Server, qc *queue.Client, maxIdle time.Duration) (stop func() <-chan struct{}) {
	t.Helper()
	s := delayed.New(qc, hclog.NewNullLogger())
	s.MaxIdle = maxIdle
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitBlocked(t, srv)
	return func() <-chan struct{} { cancel(); return done }
}

func waitBlocked(t *testing.T, srv *redistest.Server) {
	t.Helper()
	redistest.Eventually(t, 10*time.Second, func() bool {
		return srv.Info(t, "clients")["blocked_clients"] == "1"
	}, "the scheduler never blocked waiting")
}

func queueLen(t *testing.T, srv *redistest.Server, key string) int {
	n, _ := redis.Int(srv.Do(t, "LLEN", key), nil)
	return n
}

// A job resqued delays wakes the poller: with MaxIdle an hour, it still
// moves about when due.
func TestRun_DelayWakes(t *testing.T) {
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	qc := queue.New(srv.Pool(t), ns)
	runScheduler(t, srv, qc, time.Hour)
	p, _ := queue.Encode("Soon", []byte(`[]`), "")
	if err := qc.Delay(context.Background(), time.Now().Add(time.Second), "q", p, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, 20*time.Second, func() bool {
		return queueLen(t, srv, queue.QueueKey(ns, "q")) == 1
	}, "the delayed job was not moved")
	if n := queueLen(t, srv, queue.SchedulerWakeKey(ns)); n > 1 {
		t.Fatalf("wake list holds %d", n)
	}
}

// An item written as Ruby's resque-scheduler does (no wake token) is
// moved by the next poll, within MaxIdle.
func TestRun_RubyItemWithinMaxIdle(t *testing.T) {
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	qc := queue.New(srv.Pool(t), ns)
	runScheduler(t, srv, qc, 300*time.Millisecond)
	ts := time.Now().Unix()
	item := `{"class":"SendMail","args":[1],"queue":"mail"}`
	srv.Do(t, "RPUSH", queue.DelayedKey(ns, ts), item)
	srv.Do(t, "SADD", queue.TimestampsKey(ns, item), queue.TimestampsEntry(ts))
	srv.Do(t, "ZADD", queue.DelayedScheduleKey(ns), ts, ts)
	redistest.Eventually(t, 20*time.Second, func() bool {
		return queueLen(t, srv, queue.QueueKey(ns, "mail")) == 1
	}, "the Ruby-written item was not moved")
	if n := queueLen(t, srv, queue.SchedulerWakeKey(ns)); n != 0 {
		t.Fatalf("wake list holds %d: Ruby pushes none", n)
	}
}

// commands sums INFO commandstats calls, except INFO's own and PING's
// (the test pool's TestOnBorrow; the daemon's pool pings only
// connections idle for a minute).
func commands(t *testing.T, srv *redistest.Server) (total int, byCmd map[string]int) {
	t.Helper()
	byCmd = map[string]int{}
	for k, v := range srv.Info(t, "commandstats") {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok || name == "info" || name == "ping" {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		n, _ := strconv.Atoi(calls)
		byCmd[name] = n
		total += n
	}
	return total, byCmd
}

// Idle, the poller costs two commands (its read and one BLPOP) per
// MaxIdle. The window ends after three BLPOPs; the bound grows with the
// time they took, so a slow machine only loosens it, while the 250 ms
// polling this replaced (four reads a second) or any busy loop exceeds it.
func TestRun_IdleCommandCount(t *testing.T) {
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	qc := queue.New(srv.Pool(t), ns)
	// Something not due for an hour: the read finds it, the poller
	// still sleeps MaxIdle.
	p, _ := queue.Encode("Later", []byte(`[]`), "")
	if err := qc.Delay(context.Background(), time.Now().Add(time.Hour), "q", p, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	const maxIdle = time.Second
	runScheduler(t, srv, qc, maxIdle)
	before, b := commands(t, srv)
	start := time.Now()
	redistest.Eventually(t, 60*time.Second, func() bool {
		_, now := commands(t, srv)
		return now["blpop"] >= b["blpop"]+3
	}, "fewer than three BLPOPs")
	elapsed := time.Since(start)
	after, a := commands(t, srv)
	n := after - before
	bound := 2*int(elapsed/maxIdle) + 4
	t.Logf("%d commands in %s (%v -> %v)", n, elapsed.Round(time.Millisecond), b, a)
	if n > bound {
		t.Fatalf("idle poller sent %d commands in %s, want at most %d", n, elapsed.Round(time.Millisecond), bound)
	}
	if a["zrangebyscore"] != b["zrangebyscore"] {
		t.Fatalf("idle poller sent %d ZRANGEBYSCORE", a["zrangebyscore"]-b["zrangebyscore"])
	}
}

// Cancelling Run while it waits stops it at once, even with MaxIdle an hour.
func TestRun_ShutdownPrompt(t *testing.T) {
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	stop := runScheduler(t, srv, queue.New(srv.Pool(t), ns), time.Hour)
	select {
	case <-stop():
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// blockedClient is the CLIENT ID of the connection blocked in BLPOP, or "".
func blockedClient(t *testing.T, srv *redistest.Server) string {
	list, _ := redis.String(srv.Do(t, "CLIENT", "LIST"), nil)
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " cmd=blpop") {
			for _, f := range strings.Fields(line) {
				if id, ok := strings.CutPrefix(f, "id="); ok {
					return id
				}
			}
		}
	}
	return ""
}

// A BLPOP cut short (UNBLOCKED, as during a failover, or a dropped
// connection) is backed off and retried, not spun on,
// and the poller still wakes for the next delayed job.
func TestRun_WaitCutShort(t *testing.T) {
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	qc := queue.New(srv.Pool(t), ns)
	runScheduler(t, srv, qc, time.Hour)
	for i, cut := range []func(id string){
		func(id string) { srv.Do(t, "CLIENT", "UNBLOCK", id, "ERROR") },
		func(id string) { srv.Do(t, "CLIENT", "KILL", "ID", id) },
	} {
		var id string
		redistest.Eventually(t, 10*time.Second, func() bool { id = blockedClient(t, srv); return id != "" }, "no BLPOP blocked")
		_, b := commands(t, srv)
		cut(id)
		redistest.Eventually(t, 10*time.Second, func() bool {
			_, a := commands(t, srv)
			return a["blpop"] > b["blpop"] && blockedClient(t, srv) != ""
		}, "cut %d: the poller did not block again", i)
		if _, a := commands(t, srv); a["blpop"]-b["blpop"] > 3 {
			t.Fatalf("cut %d: %d BLPOPs after one cut", i, a["blpop"]-b["blpop"])
		}
	}
	p, _ := queue.Encode("Now", []byte(`[]`), "")
	if err := qc.Delay(context.Background(), time.Now(), "q", p, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, 20*time.Second, func() bool {
		return queueLen(t, srv, queue.QueueKey(ns, "q")) == 1
	}, "the delayed job was not moved after the cuts")
}

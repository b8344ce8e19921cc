package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// rubyScheduler stands in for a Ruby resque-scheduler process sharing the
// Redis: until the test ends it moves due delayed items exactly as
// resque/resque-scheduler (lib/resque/scheduler.rb, at 786653e) does.
//
//   - handle_delayed_items: Resque.next_delayed_timestamp, which is
//     search_first_delayed_timestamp_in_range (delaying_extensions.rb):
//     ZRANGEBYSCORE delayed_queue_schedule -inf <now> LIMIT 0 1, until none.
//   - enqueue_delayed_items_for_timestamp and
//     enqueue_items_in_batch_for_timestamp: LRANGE delayed:<ts> 0 99
//     (delayed_requeue_batch_size 100), WATCH delayed:<ts>, then in one
//     MULTI per item SREM timestamps:<encoded item> delayed:<ts> and
//     enqueue(Resque.decode(item)), then LTRIM delayed:<ts> 100 -1; EXEC.
//   - enqueue_from_config: args = item['args'], class = item['class'],
//     params = args.is_a?(Hash) ? [args] : Array(args), queue =
//     item['queue'], then Resque.enqueue_to / Resque::Job.create, that is
//     Resque.push(queue, class: klass.to_s, args: params): SADD queues,
//     RPUSH queue:<q> {"class":...,"args":[...]}. Every other field of the
//     item (id, attempt, retry) is dropped.
//   - clean_up_timestamp: WATCH delayed:<ts>; if LLEN is 0, MULTI DEL
//     delayed:<ts>, ZREM delayed_queue_schedule <ts>; EXEC; else UNWATCH.
//
// Ruby's JSON re-encodes the args; the tests use only integers and
// strings, which it writes back byte for byte, as Go does here.
func rubyScheduler(t *testing.T, srv *redistest.Server) {
	t.Helper()
	pool := srv.Pool(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond) // resque-scheduler's poll loop
		defer tick.Stop()
		for {
			conn := pool.Get()
			err := rubyHandleDelayedItems(conn, time.Now())
			conn.Close()
			if err != nil {
				t.Errorf("ruby scheduler: %v", err)
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
}

func rubyHandleDelayedItems(conn redis.Conn, now time.Time) error {
	for {
		tss, err := redis.Strings(conn.Do("ZRANGEBYSCORE", queue.DelayedScheduleKey(ns), "-inf", now.Unix(), "LIMIT", 0, 1))
		if err != nil || len(tss) == 0 {
			return err
		}
		ts, err := strconv.ParseInt(tss[0], 10, 64)
		if err != nil {
			return err
		}
		for {
			n, err := rubyEnqueueBatch(conn, ts, 100)
			if err != nil {
				return err
			}
			if n < 100 { // the last batch, or a transaction WATCH aborted
				break
			}
		}
	}
}

// rubyEnqueueBatch is enqueue_items_in_batch_for_timestamp: it returns the
// number of items moved, or -1 when the WATCHed list changed.
func rubyEnqueueBatch(conn redis.Conn, ts int64, batch int) (int, error) {
	key := queue.DelayedKey(ns, ts)
	bucket := "delayed:" + strconv.FormatInt(ts, 10) // timestamp_key, without the namespace
	items, err := redis.ByteSlices(conn.Do("LRANGE", key, 0, batch-1))
	if err != nil {
		return 0, err
	}
	if _, err := conn.Do("WATCH", key); err != nil {
		return 0, err
	}
	_ = conn.Send("MULTI")
	for _, it := range items {
		_ = conn.Send("SREM", queue.TimestampsKey(ns, string(it)), bucket)
		var job struct {
			Class string          `json:"class"`
			Args  json.RawMessage `json:"args"`
			Queue string          `json:"queue"`
		}
		if err := json.Unmarshal(it, &job); err != nil {
			return 0, fmt.Errorf("decode item %s: %w", it, err)
		}
		params := job.Args
		if a := bytes.TrimSpace(params); len(a) == 0 || bytes.Equal(a, []byte("null")) {
			params = json.RawMessage("[]") // Array(nil)
		} else if a[0] == '{' {
			params = append(append([]byte("["), a...), ']') // [args] for a Hash
		} else if a[0] != '[' {
			params = append(append([]byte("["), a...), ']') // Array(scalar)
		}
		payload, _ := json.Marshal(struct {
			Class string          `json:"class"`
			Args  json.RawMessage `json:"args"`
		}{job.Class, params})
		_ = conn.Send("SADD", queue.QueuesKey(ns), job.Queue)
		_ = conn.Send("RPUSH", queue.QueueKey(ns, job.Queue), payload)
	}
	_ = conn.Send("LTRIM", key, batch, -1)
	reply, err := conn.Do("EXEC")
	if err != nil {
		return 0, err
	}
	if reply == nil {
		return -1, nil
	}
	if len(items) < batch {
		if _, err := conn.Do("WATCH", key); err != nil {
			return 0, err
		}
		if n, err := redis.Int(conn.Do("LLEN", key)); err != nil {
			return 0, err
		} else if n == 0 {
			_ = conn.Send("MULTI")
			_ = conn.Send("DEL", key)
			_ = conn.Send("ZREM", queue.DelayedScheduleKey(ns), ts)
			if _, err := conn.Do("EXEC"); err != nil {
				return 0, err
			}
		} else if _, err := conn.Do("UNWATCH"); err != nil {
			return 0, err
		}
	}
	return len(items), nil
}

// TestDelayed_RubySchedulerKeepsStatus: a tracked delayed job moved by
// Ruby's resque-scheduler, which drops its "id", still ends complete (or
// failed) with the status TTL: the worker finds its token again.
func TestDelayed_RubySchedulerKeepsStatus(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Hello", `cat > /dev/null`)
	handler(t, dir, "Boom", `echo boom >&2; exit 1`)
	start(t, srv, dir, "--queues", "default", "--scheduler=false")
	waitWorkers(t, srv, 1)
	rubyScheduler(t, srv)

	for _, tc := range []struct {
		class string
		want  status.Code
	}{{"Hello", status.Complete}, {"Boom", status.Failed}} {
		id, stderr, code := cli(t, srv, "enqueue", "--in", "1", "--track", tc.class, "42", "x")
		if code != 0 {
			t.Fatalf("enqueue --in --track: exit %d: %s", code, stderr)
		}
		tr := status.New(srv.Pool(t), ns)
		var last status.Status
		redistest.Eventually(t, 15*time.Second, func() bool {
			last, _ = tr.Get(t.Context(), id)
			return last.Code.Final()
		}, "%s: status of a tracked job moved by Ruby's scheduler never final", tc.class)
		if last.Code != tc.want {
			t.Errorf("%s: status = %s, want %s", tc.class, last.Code, tc.want)
		}
		if ttl, _ := redis.Int(srv.Do(t, "TTL", status.Key(ns, id)), nil); ttl <= 0 || ttl > int(status.TTL.Seconds()) {
			t.Errorf("%s: status TTL = %d, want the final status's %s", tc.class, ttl, status.TTL)
		}
	}
	if n := len(failures(t, srv)); n != 1 {
		t.Errorf("%d failure records, want Boom's 1", n)
	}
	keys, _ := redis.Strings(srv.Do(t, "KEYS", ns+":resqued:delayed-status:*"), nil)
	for _, k := range keys {
		if k != queue.DelayedStatusAnyKey(ns) {
			t.Errorf("delayed-status index left behind: %q", k)
		}
	}
	// The gate that makes workers look up tokens lives on, but expires.
	if ttl, _ := redis.Int(srv.Do(t, "TTL", queue.DelayedStatusAnyKey(ns)), nil); ttl <= 0 {
		t.Errorf("%s TTL = %d, want an expiry", queue.DelayedStatusAnyKey(ns), ttl)
	}
}

// TestRetry_RubyScheduler: a job retried by class policy whose retries are
// moved by Ruby's resque-scheduler (which drops "attempt") keeps counting
// through resque-retry's key: 1 run + 3 retries, one failure record with
// its attempt number, and the key is gone afterwards.
func TestRetry_RubyScheduler(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "attempts")
	handler(t, dir, "Again", `echo "$RESQUE_ATTEMPT" >> "`+log+`"; exit 75`)
	cfg := filepath.Join(t.TempDir(), "retry.yml")
	if err := os.WriteFile(cfg, []byte("classes:\n  Again:\n    attempts: 4\n    backoff: fixed\n    delay: 0.1\n    jitter: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, srv, dir, "--queues", "r", "--scheduler=false", "--retry-config", cfg)
	waitWorkers(t, srv, 1)
	rubyScheduler(t, srv)

	id, stderr, code := cli(t, srv, "enqueue", "--track", "--queue", "r", "Again", "7", "x")
	if code != 0 {
		t.Fatalf("enqueue --track: exit %d: %s", code, stderr)
	}
	redistest.Eventually(t, 20*time.Second, func() bool { return len(failures(t, srv)) >= 1 },
		"the retried job never failed for good")
	fs := failures(t, srv)
	if len(fs) != 1 || !strings.Contains(fs[0].Error, "(attempt 4)") {
		t.Errorf("failures = %+v, want one, at attempt 4", fs)
	}
	// The final failure is recorded instead of a retry: nothing is left
	// to run, so the log is complete.
	for _, k := range []string{queue.DelayedScheduleKey(ns), queue.QueueKey(ns, "r")} {
		if n, _ := redis.Int(srv.Do(t, "EXISTS", k), nil); n != 0 {
			t.Errorf("%s still exists after the final failure", k)
		}
	}
	b, _ := os.ReadFile(log)
	if got, want := strings.Fields(string(b)), []string{"1", "2", "3", "4"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("RESQUE_ATTEMPT of each run = %q, want %q", got, want)
	}
	if keys, _ := redis.Strings(srv.Do(t, "KEYS", ns+":resque-retry:*"), nil); len(keys) != 0 {
		t.Errorf("resque-retry key left behind: %q", keys)
	}
	if s, err := status.New(srv.Pool(t), ns).Get(t.Context(), id); err != nil || s.Code != status.Failed {
		t.Errorf("status = %v, %v; want failed", s.Code, err)
	}
}

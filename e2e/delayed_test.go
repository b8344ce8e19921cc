package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// Delayed jobs: enqueue --in/--at, the daemon's scheduler, delayed list.

func waitWorkers(t *testing.T, srv *redistest.Server, n int) {
	t.Helper()
	redistest.Eventually(t, 30*time.Second, func() bool {
		c, _ := redis.Int(srv.Do(t, "SCARD", queue.WorkersKey(ns)), nil)
		return c >= n
	}, "%d workers never registered", n)
}

func TestDelayed_EnqueueIn(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{{"SingleWorker", nil}, {"Count2", []string{"--count", "2"}}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			dir := t.TempDir()
			out := filepath.Join(dir, "ran")
			handler(t, filepath.Join(dir, "h"), "Hello", `cat >> `+out+`; echo >> `+out)
			start(t, srv, filepath.Join(dir, "h"), append([]string{"--queues", "default"}, tc.args...)...)
			waitWorkers(t, srv, 1)

			stdout, stderr, code := cli(t, srv, "enqueue", "--in", "1", "--track", "Hello", "42")
			if code != 0 {
				t.Fatalf("enqueue --in: exit %d: %s", code, stderr)
			}
			began := time.Now()
			if st, _, _ := cli(t, srv, "status", stdout); !strings.Contains(st, "waiting") {
				t.Errorf("status of delayed tracked job = %q, want waiting", st)
			}
			if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "default")), nil); n != 0 {
				t.Fatalf("delayed job is already on its queue")
			}
			redistest.Eventually(t, 3*time.Second, func() bool {
				b, _ := os.ReadFile(out)
				return strings.TrimSpace(string(b)) == "[42]"
			}, "delayed job did not run")
			t.Logf("ran %s after enqueue --in 1", time.Since(began).Round(10*time.Millisecond))
			redistest.Eventually(t, 5*time.Second, func() bool {
				st, _, _ := cli(t, srv, "status", stdout)
				return strings.Contains(st, "complete")
			}, "tracked delayed job never completed")
			if keys, _ := redis.Strings(srv.Do(t, "KEYS", ns+":delayed*"), nil); len(keys) != 0 {
				t.Errorf("left behind: %q", keys)
			}
		})
	}
}

// TestDelayed_RubyEnqueueAt: a job written by Ruby's Resque.enqueue_at
// runs, and --scheduler=false leaves it alone.
func TestDelayed_RubyEnqueueAt(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "ran")
	handler(t, filepath.Join(dir, "h"), "Hello", `cat >> `+out+`; echo >> `+out)
	ts := time.Now().Add(-time.Second).Unix()
	item := `{"class":"Hello","args":["ruby"],"queue":"default"}`
	srv.Do(t, "RPUSH", queue.DelayedKey(ns, ts), item)
	srv.Do(t, "SADD", queue.TimestampsKey(ns, item), fmt.Sprintf("delayed:%d", ts))
	srv.Do(t, "ZADD", queue.DelayedScheduleKey(ns), ts, ts)

	off := start(t, srv, filepath.Join(dir, "h"), "--queues", "default", "--scheduler=false")
	waitWorkers(t, srv, 1)
	time.Sleep(time.Second)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("--scheduler=false moved a delayed job")
	}
	off.signal(syscall.SIGQUIT)
	if err := off.wait(20 * time.Second); err != nil {
		t.Fatalf("resqued --scheduler=false: %v", err)
	}

	start(t, srv, filepath.Join(dir, "h"), "--queues", "default")
	redistest.Eventually(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(out)
		return strings.TrimSpace(string(b)) == `["ruby"]`
	}, "Ruby enqueue_at job did not run")
}

func TestDelayed_List(t *testing.T) {
	srv := redistest.Start(t)
	id, stderr, code := cli(t, srv, "enqueue", "--at", "2099-01-02T03:04:05Z", "--queue", "mail", "SendMail", "7", "x")
	if code != 0 {
		t.Fatalf("enqueue --at: exit %d: %s", code, stderr)
	}
	if _, _, code := cli(t, srv, "enqueue", "--at", "tomorrow", "SendMail"); code != 2 {
		t.Errorf("enqueue --at tomorrow: exit %d, want 2", code)
	}
	if _, _, code := cli(t, srv, "enqueue", "--in", "1", "--at", "2099-01-02T03:04:05Z", "SendMail"); code != 2 {
		t.Errorf("enqueue --in --at: exit %d, want 2", code)
	}
	text, stderr, code := cli(t, srv, "delayed", "list")
	if code != 0 {
		t.Fatalf("delayed list: exit %d: %s", code, stderr)
	}
	if !strings.Contains(text, "2099-01-02T03:04:05Z") || !strings.Contains(text, "mail") ||
		!strings.Contains(text, "SendMail") || !strings.Contains(text, `[7,"x"]`) {
		t.Errorf("delayed list:\n%s", text)
	}
	js, _, _ := cli(t, srv, "delayed", "list", "--json")
	var rows []struct{ At, Queue, Class, ID string }
	if err := json.Unmarshal([]byte(js), &rows); err != nil {
		t.Fatalf("delayed list --json: %v\n%s", err, js)
	}
	if len(rows) != 1 || rows[0].At != "2099-01-02T03:04:05Z" || rows[0].Queue != "mail" || rows[0].Class != "SendMail" || rows[0].ID != id {
		t.Errorf("delayed list --json = %+v", rows)
	}
	item, _ := redis.String(srv.Do(t, "LINDEX", queue.DelayedKey(ns, 4071006245), 0), nil)
	if want := `{"class":"SendMail","args":[7,"x"],"id":"` + id + `","queue":"mail"}`; item != want {
		t.Errorf("stored item = %s, want %s", item, want)
	}
}

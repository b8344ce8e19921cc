package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// TestCLI_NamespaceTrailingColon: php-resque's PREFIX=resque: (and
// --namespace resque:) name the very keys that resque does, for every
// command, not resque::queue:... where the daemon never looks.
func TestCLI_NamespaceTrailingColon(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t) // in namespace "resque"
	srv.Do(t, "ZADD", queue.DelayedScheduleKey(ns), 1900000000, 1900000000)
	srv.Do(t, "RPUSH", queue.DelayedKey(ns, 1900000000), `{"class":"Later","args":["x"],"queue":"low"}`)
	for _, how := range []struct {
		name string
		env  []string // the colon given in the environment...
		args []string // ...or as a flag after the command's own words
	}{
		{"PREFIX", []string{"PREFIX=resque:"}, nil},
		{"RESQUE_NAMESPACE", []string{"RESQUE_NAMESPACE=resque:"}, nil},
		{"--namespace", nil, []string{"--namespace", "resque:"}},
	} {
		t.Run(how.name, func(t *testing.T) {
			// run runs the command words, then the namespace flag, then args.
			run := func(words string, args ...string) string {
				t.Helper()
				args = append(append(strings.Fields(words), how.args...), args...)
				out, errOut, code := cliEnv(t, srv, how.env, args...)
				if code != 0 {
					t.Fatalf("resqued %v (%s): exit %d\nstdout: %s\nstderr: %s", args, how.name, code, out, errOut)
				}
				return out
			}
			// The read-only views print what they print without the colon.
			for _, cmd := range []string{"stats --json", "queues --json", "workers --json", "failed list --json", "delayed list --json"} {
				if got, want := run(cmd), mustCLI(t, srv, strings.Fields(cmd)...); got != want {
					t.Errorf("resqued %v with %s:\n%s\nwant, as with resque:\n%s", cmd, how.name, got, want)
				}
			}

			// enqueue writes resque:queue:<q>.
			q := "colon-" + strings.TrimPrefix(how.name, "--")
			run("enqueue", "--queue", q, "Job", "1")
			if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, q)), nil); n != 1 {
				t.Errorf("LLEN %s = %d after enqueue with %s, want 1", queue.QueueKey(ns, q), n, how.name)
			}
			if ok, _ := redis.Bool(srv.Do(t, "SISMEMBER", queue.QueuesKey(ns), q), nil); !ok {
				t.Errorf("%s not in %s after enqueue with %s", q, queue.QueuesKey(ns), how.name)
			}
			cmd := exec.Command(resqued, append(append([]string{"enqueue"}, how.args...), "--stdin", "--queue", q, "--quiet")...)
			cmd.Env = append(append(os.Environ(), "REDIS_URL="+srv.URL(), noRaceExitSleep), how.env...)
			cmd.Stdin = strings.NewReader(`{"class":"Bulk","args":[]}` + "\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("enqueue --stdin with %s: %v\n%s", how.name, err, out)
			}
			if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, q)), nil); n != 2 {
				t.Errorf("LLEN %s = %d after enqueue --stdin with %s, want 2", queue.QueueKey(ns, q), n, how.name)
			}

			// enqueue --track writes resque:status:<token>, status reads it.
			tok := run("enqueue", "--queue", q, "--track", "Job")
			if n, _ := redis.Int(srv.Do(t, "EXISTS", status.Key(ns, tok)), nil); n != 1 {
				t.Errorf("%s missing after enqueue --track with %s", status.Key(ns, tok), how.name)
			}
			srv.Do(t, "SET", status.Key(ns, "seeded-"+how.name), `{"status":2,"updated":1800000000}`)
			if got := run("status", "seeded-"+how.name); got != "running" {
				t.Errorf("status with %s = %q, want running (the status in %s)", how.name, got, status.Key(ns, "seeded-"+how.name))
			}

			// enqueue --in writes resque:delayed_queue_schedule.
			before, _ := redis.Int(srv.Do(t, "ZCARD", queue.DelayedScheduleKey(ns)), nil)
			run("enqueue", "--queue", q, "--at", time.Now().Add(time.Duration(100+len(how.name))*time.Hour).UTC().Format(time.RFC3339), "Later")
			if after, _ := redis.Int(srv.Do(t, "ZCARD", queue.DelayedScheduleKey(ns)), nil); after != before+1 {
				t.Errorf("ZCARD %s = %d after enqueue --at with %s, want %d", queue.DelayedScheduleKey(ns), after, how.name, before+1)
			}

			// failed retry pushes to resque:queue:<q> and marks resque:failed.
			run("failed retry", "0")
			if rec, _ := redis.String(srv.Do(t, "LINDEX", queue.FailedKey(ns), 0), nil); !strings.Contains(rec, `"retried_at"`) {
				t.Errorf("failed record 0 not marked retried by failed retry with %s: %s", how.name, rec)
			}

			// web shows resque's queues and failures.
			port := freePort(t)
			web := exec.Command(resqued, append(append([]string{"web"}, how.args...), "--listen", fmt.Sprintf("127.0.0.1:%d", port))...)
			web.Env = append(append(os.Environ(), "REDIS_URL="+srv.URL(), noRaceExitSleep), how.env...)
			if err := web.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = web.Process.Kill(); _ = web.Wait() })
			base := fmt.Sprintf("http://127.0.0.1:%d", port)
			redistest.Eventually(t, 30*time.Second, func() bool { code, _ := httpGet(t, base+"/healthz"); return code == 200 }, "web never served")
			if _, body := httpGet(t, base+"/queues"); !strings.Contains(body, `href="/queues/high"`) || !strings.Contains(body, `href="/queues/`+q+`"`) {
				t.Errorf("web with %s does not list resque's queues:\n%s", how.name, body)
			}
			if _, body := httpGet(t, base+"/failed"); !strings.Contains(body, "2 failure records") {
				t.Errorf("web with %s does not show resque's 2 failures:\n%s", how.name, body)
			}
		})
	}
}

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// TestDaemon_QueuePause: a daemon on queues a,b. Pausing a while its job
// runs lets that job finish; a's later jobs stay queued while b's, lower
// in priority, run; resumed, a's run. The same with the key written as
// Ruby's resque-pause writes it (SET pause:queue:a "true", then DEL).
func TestDaemon_QueuePause(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, work := t.TempDir(), t.TempDir()
	log := filepath.Join(work, "log")
	started, release := filepath.Join(work, "started"), filepath.Join(work, "release")
	handler(t, dir, "Rec", `{ cat; echo; } | sed "s/^/$RESQUE_QUEUE /" >> "`+log+`"`)
	handler(t, dir, "Slow", `touch "`+started+`"; while [ ! -e "`+release+`" ]; do sleep 0.05; done; echo "$RESQUE_QUEUE slow" >> "`+log+`"`)
	job := func(q, arg string) { push(t, srv, q, `{"class":"Rec","args":["`+arg+`"]}`) }

	push(t, srv, "a", `{"class":"Slow","args":[]}`)
	start(t, srv, dir, "--queues", "a,b")
	redistest.Eventually(t, 30*time.Second, func() bool { _, err := os.Stat(started); return err == nil }, "the slow job never started")

	// Paused mid-job: the running job finishes, nothing more comes off a.
	if out := mustCLI(t, srv, "queue", "pause", "a"); out != "paused queue a" {
		t.Errorf("queue pause a printed %q", out)
	}
	job("a", "a1")
	job("a", "a2")
	job("b", "b1")
	job("b", "b2")
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitProcessed(t, srv, 3)
	logged := func() []string {
		b, _ := os.ReadFile(log)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	// b's jobs ran although a, higher in priority, held two: a was
	// passed over, not merely slow.
	if got, want := strings.Join(logged(), "|"), `a slow|b ["b1"]|b ["b2"]`; got != want {
		t.Errorf("jobs run while a is paused: %s, want %s", got, want)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "a")), nil); n != 2 {
		t.Errorf("paused queue a holds %d jobs, want 2", n)
	}
	if out := mustCLI(t, srv, "queue", "list"); !strings.Contains(out, "a      2     yes") || !strings.Contains(out, "b      0     no") {
		t.Errorf("queue list while a is paused:\n%s", out)
	}

	if out := mustCLI(t, srv, "queue", "resume", "a"); out != "resumed queue a" {
		t.Errorf("queue resume a printed %q", out)
	}
	waitProcessed(t, srv, 5)
	if got := logged(); len(got) != 5 || got[3] != `a ["a1"]` || got[4] != `a ["a2"]` {
		t.Errorf("after resume the log is %q, want a1 and a2 last", got)
	}

	// Ruby's resque-pause pauses a (ResquePauseHelper.pause: SET
	// pause:queue:a true), then unpauses it (DEL).
	srv.Do(t, "SET", "resque:pause:queue:a", "true")
	job("a", "a3")
	job("b", "b3")
	waitProcessed(t, srv, 6)
	if got := logged(); got[len(got)-1] != `b ["b3"]` {
		t.Errorf("with a paused by resque-pause, ran %q last, want b3", got[len(got)-1])
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "a")), nil); n != 1 {
		t.Errorf("queue a paused by resque-pause holds %d jobs, want 1", n)
	}
	srv.Do(t, "DEL", "resque:pause:queue:a")
	waitProcessed(t, srv, 7)
	if got := logged(); got[len(got)-1] != `a ["a3"]` {
		t.Errorf("after resque-pause's unpause, ran %q last, want a3", got[len(got)-1])
	}
	if n := len(failures(t, srv)); n != 0 {
		t.Errorf("%d failures, want 0", n)
	}
}

// TestCLIQueuePause: queue pause, resume and list, what they print, what
// they write (resque-pause's key and value) and their exit codes.
func TestCLIQueuePause(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t)
	pauseKey := func(q string) string {
		v, err := redis.String(srv.Do(t, "GET", "resque:pause:queue:"+q), nil)
		if err == redis.ErrNil {
			return "(none)"
		}
		return v
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"queue", "pause", "high"}, "paused queue high"},
		{[]string{"queue", "pause", "high"}, "queue high was already paused"},
		{[]string{"queue", "pause", "later", "low"}, "paused queue later (no job has been pushed to it yet)\npaused queue low"},
		{[]string{"queue", "resume", "low"}, "resumed queue low"},
		{[]string{"queue", "resume", "low"}, "queue low was not paused"},
	} {
		if out := mustCLI(t, srv, tc.args...); out != tc.want {
			t.Errorf("resqued %s printed %q, want %q", strings.Join(tc.args, " "), out, tc.want)
		}
	}
	for q, want := range map[string]string{"high": "true", "later": "true", "low": "(none)"} {
		if got := pauseKey(q); got != want {
			t.Errorf("pause:queue:%s = %s, want %s", q, got, want)
		}
	}

	out := mustCLI(t, srv, "queue", "list")
	wantLines(t, out, "QUEUE  SIZE  PAUSED", "empty  0     no", "high   2     yes", "later  0     yes", "low    1     no")
	var qs []queue.QueueSize
	mustJSON(t, mustCLI(t, srv, "queue", "list", "--json"), &qs)
	want := []queue.QueueSize{{Queue: "empty"}, {Queue: "high", Size: 2, Paused: true}, {Queue: "later", Paused: true}, {Queue: "low", Size: 1}}
	if len(qs) != len(want) {
		t.Fatalf("queue list --json = %+v, want %+v", qs, want)
	}
	for i := range want {
		if qs[i] != want[i] {
			t.Errorf("queue list --json [%d] = %+v, want %+v", i, qs[i], want[i])
		}
	}
	// queues and stats show the pause of the queues in the queues set.
	wantLines(t, mustCLI(t, srv, "queues"), "high   2     yes", "low    1     no")
	wantLines(t, mustCLI(t, srv, "stats"), "  high     2  paused")
	var s queue.Stats
	mustJSON(t, mustCLI(t, srv, "stats", "--json"), &s)
	if len(s.Queues) != 3 || !s.Queues[1].Paused || s.Queues[2].Paused {
		t.Errorf("stats --json queues = %+v, want high paused", s.Queues)
	}
	srv.Do(t, "SET", queue.PauseAllKey(ns), "true")
	wantLines(t, mustCLI(t, srv, "queue", "list"), `every worker is paused: pause-all-workers is "true"`)

	for _, tc := range []struct {
		args    []string
		errHas  string
		hintHas string
	}{
		{[]string{"queue", "pause"}, "queue pause: name the queue to pause", "Try: resqued queue pause QUEUE"},
		{[]string{"queue", "resume"}, "queue resume: name the queue to resume", "Try: resqued queue resume QUEUE"},
		{[]string{"queue", "pause", "*"}, `"*" is a pattern, not a queue`, "pause-all-workers"},
		{[]string{"queue", "pause", "high*"}, `"high*" is a pattern`, "Try: resqued queue pause QUEUE"},
		{[]string{"queue", "pause", "a,b"}, "must not contain a comma", "Try:"},
		{[]string{"queue", "pause", ""}, "queue name is empty", "Try:"},
		{[]string{"queue", "list", "extra"}, "queue list: takes no arguments", "Try: resqued queue list --json"},
	} {
		out, errOut, code := cli(t, srv, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.errHas) || !strings.Contains(errOut, tc.hintHas) || out != "" {
			t.Errorf("resqued %q: exit %d, stdout %q, stderr %q; want exit 2 saying %q and %q", tc.args, code, out, errOut, tc.errHas, tc.hintHas)
		}
	}
	if v := pauseKey("a,b"); v != "(none)" {
		t.Errorf("a refused name was paused: %s", v)
	}
	// Redis unreachable: exit 1 with the reason, not 2.
	_, errOut, code := cli(t, &redistest.Server{Addr: "127.0.0.1:1"}, "queue", "pause", "high")
	if code != 1 || !strings.Contains(errOut, "pause queue high") {
		t.Errorf("queue pause with Redis down: exit %d, stderr %q; want 1 naming the queue", code, errOut)
	}
}

package worker_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
	"github.com/resqued/resqued/pkg/worker"
)

// monitor records every command Redis runs, from MONITOR, until the
// test ends.
type monitor struct {
	mu    sync.Mutex
	lines []string
}

func startMonitor(t *testing.T, srv *redistest.Server) *monitor {
	t.Helper()
	conn, err := redis.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Do("MONITOR"); err != nil {
		t.Fatal(err)
	}
	m := &monitor{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			line, err := redis.String(conn.Receive())
			if err != nil {
				return
			}
			m.mu.Lock()
			m.lines = append(m.lines, line)
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return m
}

// sent returns the commands the clients sent (not those run inside a
// script, which MONITOR lists as "[0 lua]") whose line match accepts.
func (m *monitor) sent(match func(line string) bool) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, l := range m.lines {
		if !strings.Contains(l, "lua]") && match(l) {
			out = append(out, l)
		}
	}
	return out
}

// contains matches a line holding s.
func contains(s string) func(string) bool {
	return func(l string) bool { return strings.Contains(l, s) }
}

// runningMark is the separate running mark (queue's runningScript) as
// MONITOR shows it: a script of two keys, worker:<id> and a status key.
var runningMark = regexp.MustCompile(`"EVAL(SHA)?" "(?:[^"\\]|\\.)*" "2" "[^"]*:worker:[^"]*" "[^"]*:status"`)

// writes returns the SET commands seen on key.
func (m *monitor) writes(key string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, l := range m.lines {
		if strings.Contains(l, `"SET" "`+key+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// A tracked job's final status and its detail (a failure's error, a
// success's result) are written once, by the script that records the
// outcome: no separate check-and-set before it, so no reader ever sees a
// running job with an error, or a complete one without its result.
func TestWorker_OutcomeStatusWrittenOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.handler(t, "Fail", `cat >/dev/null; echo '{"exception":"ImageError","error":"cannot decode"}' >&3; exit 1`)
	e.handler(t, "Ok", `cat >/dev/null; echo '{"result":{"w":1}}' >&3`)
	jobs := map[string]string{
		"tok-fail": `{"class":"Fail","args":[1],"id":"tok-fail"}`,
		"tok-ok":   `{"class":"Ok","args":[2],"id":"tok-ok"}`,
		"tok-bad":  `{"class":"Log","args":{"not":"an array"},"id":"tok-bad"}`,
	}
	for _, tok := range []string{"tok-fail", "tok-ok", "tok-bad"} {
		if err := e.q.Enqueue(ctx, "q", []byte(jobs[tok]), queue.EnqueueOptions{Track: true, ID: tok}); err != nil {
			t.Fatal(err)
		}
	}
	m := startMonitor(t, e.srv)
	cfg := e.config(t, 301)
	cfg.Interval = -1 // drain, then return
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]struct {
		code   status.Code
		detail string
	}{
		"tok-fail": {status.Failed, `"error":"ImageError: cannot decode"`},
		"tok-ok":   {status.Complete, `"result":{"w":1}`},
		"tok-bad":  {status.Failed, `"error":"Resqued::InvalidPayload: `},
	} {
		key := status.Key(e.ns, tok)
		f, err := e.st.GetFull(ctx, tok)
		if err != nil || f.Code != want.code {
			t.Errorf("%s: status %v %v, want %v", tok, f.Code, err, want.code)
		}
		raw, _ := redis.String(e.srv.Do(t, "GET", key), nil)
		if !strings.Contains(raw, want.detail) {
			t.Errorf("%s: status %s, want it to hold %s", tok, raw, want.detail)
		}
		// MONITOR lines can trail the commands: wait for the final write.
		final := `\"status\":` + string(rune('0'+int(want.code)))
		redistest.Eventually(t, 10*time.Second, func() bool {
			ws := m.writes(key)
			return len(ws) > 0 && strings.Contains(ws[len(ws)-1], final)
		}, "%s: final status write never seen", tok)
		// One write to running (the reserve script), one to the end.
		if ws := m.writes(key); len(ws) != 2 || !strings.Contains(ws[0], `\"status\":2`) {
			t.Errorf("%s: %d status writes, want 2 (running, then final with detail):\n%s", tok, len(ws), strings.Join(ws, "\n"))
		}
	}
}

// A busy worker records each job's outcome and takes the next one in one
// script (queue.Fetcher.FinishAndReserve): draining N untracked jobs
// costs N+1 scripts sent by the worker (the first reserve, then one per
// job), where it cost 2N before. Every job still runs once and counts.
func TestWorker_OneScriptPerJob(t *testing.T) {
	e := newEnv(t)
	const n = 20
	for i := 0; i < n; i++ {
		e.enqueue(t, "q", "Log", fmt.Sprintf("[%d]", i))
	}
	m := startMonitor(t, e.srv)
	e.drain(t, 302)
	if runs := e.runLines(); len(runs) != n {
		t.Fatalf("%d runs, want %d: %v", len(runs), n, runs)
	}
	if got, _ := redis.Int(e.srv.Do(t, "GET", queue.StatKey(e.ns, "processed")), nil); got != n {
		t.Fatalf("processed = %d, want %d", got, n)
	}
	// MONITOR lines can trail the commands: wait for the unregister
	// (its SREM runs inside a script, so look at every line).
	redistest.Eventually(t, 10*time.Second, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return strings.Contains(strings.Join(m.lines, "\n"), `"SREM"`)
	}, "unregister never seen")
	// Scripts that reserve (they name the queue) or record an outcome
	// (they name stat:processed), as the client sent them.
	scripts := len(m.sent(func(l string) bool {
		return strings.Contains(l, `"EVAL`) && (strings.Contains(l, `:queue:q"`) || strings.Contains(l, `:stat:processed"`))
	}))
	// The first reserve, one outcome-and-reserve step per job, the
	// unregistration (it names stat:processed too), and each of those
	// scripts' first EVALSHA answered NOSCRIPT and sent again as EVAL.
	// Separate reserve and outcome scripts would be 2n+1 and more.
	if max := n + 6; scripts > max {
		t.Errorf("worker sent %d reserve or outcome scripts for %d jobs, want at most %d (one per job)", scripts, n, max)
	}
}

// A tracked job's running mark needs its status key, which a script may
// touch only if it is declared, and which is known only once the job is
// read: a separate script per job. The reserve step now says which job
// the next reserve will take, so the next step declares its key and
// marks it in the same script. A single worker on its queue sends no
// separate running marks at all; every status still goes running, then
// complete, and every job runs once.
func TestWorker_TrackedRunningMarkForeseen(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 10
	for i := 0; i < n; i++ {
		tok := fmt.Sprintf("tok-%02d", i)
		p, _ := queue.Encode("Log", []byte(fmt.Sprintf("[%d]", i)), tok)
		if err := e.q.Enqueue(ctx, "q", p, queue.EnqueueOptions{Track: true, ID: tok}); err != nil {
			t.Fatal(err)
		}
	}
	m := startMonitor(t, e.srv)
	e.drain(t, 304)
	if runs := e.runLines(); len(runs) != n {
		t.Fatalf("%d runs, want %d", len(runs), n)
	}
	for i := 0; i < n; i++ {
		tok := fmt.Sprintf("tok-%02d", i)
		key := status.Key(e.ns, tok)
		if s, err := e.st.Get(ctx, tok); err != nil || s.Code != status.Complete {
			t.Errorf("%s: status %+v %v, want complete", tok, s, err)
		}
		redistest.Eventually(t, 10*time.Second, func() bool { return len(m.writes(key)) >= 2 }, "%s: status writes never seen", tok)
		if ws := m.writes(key); len(ws) != 2 || !strings.Contains(ws[0], `\"status\":2`) {
			t.Errorf("%s: %d status writes, want running then complete:\n%s", tok, len(ws), strings.Join(ws, "\n"))
		}
	}
	marks := len(m.sent(runningMark.MatchString))
	// The first job's is separate (nothing foresaw it): a pipelined
	// EVALSHA, answered NOSCRIPT on this new server, then Script.Do's
	// EVALSHA and EVAL. Without foresight it would be one more per job.
	if marks > 3 {
		t.Errorf("%d separate running marks for %d jobs on one worker, want at most 3 (the first job's)", marks, n)
	}
}

// drain runs a worker with pid until the queue is empty (INTERVAL=0), its
// lease long enough that it sends no renewal of its own meanwhile.
func (e *env) drain(t *testing.T, pid int) {
	t.Helper()
	cfg := e.config(t, pid)
	cfg.Interval = -1
	cfg.LeaseTTL = time.Minute
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

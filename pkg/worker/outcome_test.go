package worker_test

import (
	"context"
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

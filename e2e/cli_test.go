package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/internal/resquetest"
	"github.com/resqued/resqued/pkg/queue"
)

// The operator commands: stats, queues, workers and failed.

const (
	busyWorker = resquetest.BusyWorker
	idleWorker = resquetest.IdleWorker
	pausedWkr  = resquetest.PausedWorker
	busyJob    = resquetest.BusyJob
	// oddPayload has spacing, escapes and extra fields a re-encode would lose.
	oddPayload = `{"class":"Resize", "args":[1.50,"caf\u00e9"],"id":"0f3a","queue_time":1795769182.25}`
	// secondFailure is a record in Ruby's exact format.
	secondFailure = `{"failed_at":"2026/11/27 09:01:00 UTC","payload":` + oddPayload +
		`,"exception":"Resque::DirtyExit","error":"Child process received unhandled signal pid 77: SIGKILL\nsecond line","backtrace":[],"worker":"vm:1873:images","queue":"images"}`
)

// rubyFailure is the failure record a real Ruby Resque worker wrote.
func rubyFailure(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../testdata/compat/failed/ruby.json")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// seedAdmin starts a server holding two failures, three queues, stats and
// three registered workers (busy, idle, paused), as Ruby Resque leaves them.
func seedAdmin(t *testing.T) *redistest.Server {
	t.Helper()
	srv := redistest.Start(t)
	srv.Do(t, "RPUSH", queue.FailedKey(ns), rubyFailure(t), secondFailure)
	push(t, srv, "high", `{"class":"A","args":[]}`)
	push(t, srv, "high", `{"class":"A","args":[2]}`)
	push(t, srv, "low", `{"class":"B","args":[]}`)
	srv.Do(t, "SADD", queue.QueuesKey(ns), "empty")
	srv.Do(t, "SET", queue.StatKey(ns, "processed"), 10)
	srv.Do(t, "SET", queue.StatKey(ns, "failed"), 2)
	resquetest.SeedWorkers(t, srv, ns)
	return srv
}

// adminCLI is cli (which already spares the race binary its exit sleep).
func adminCLI(t *testing.T, srv *redistest.Server, args ...string) (string, string, int) {
	t.Helper()
	return cli(t, srv, args...)
}

// mustCLI runs a command that must succeed.
func mustCLI(t *testing.T, srv *redistest.Server, args ...string) string {
	t.Helper()
	out, errOut, code := adminCLI(t, srv, args...)
	if code != 0 {
		t.Fatalf("resqued %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

func mustJSON(t *testing.T, s string, v interface{}) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
}

func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestCLIStats(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t)
	out := mustCLI(t, srv, "stats")
	wantLines(t, out, "processed  10", "failed     2", "pending    3", "queues     3", "workers    3", "working    1")
	if i, j, k := strings.Index(out, "empty"), strings.Index(out, "high"), strings.Index(out, "low"); !(i < j && j < k) {
		t.Errorf("queues not sorted:\n%s", out)
	}
	var s queue.Stats
	mustJSON(t, mustCLI(t, srv, "stats", "--json"), &s)
	want := []queue.QueueSize{{Queue: "empty", Size: 0}, {Queue: "high", Size: 2}, {Queue: "low", Size: 1}}
	if s.Processed != 10 || s.Failed != 2 || s.FailedNow != 2 || s.Pending != 3 || s.Workers != 3 || s.Working != 1 || !equalSizes(s.Queues, want) {
		t.Errorf("stats --json = %+v", s)
	}
}

func equalSizes(a, b []queue.QueueSize) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCLIStatsEmpty(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var s map[string]interface{}
	mustJSON(t, mustCLI(t, srv, "stats", "--json"), &s)
	if s["processed"] != 0.0 || s["workers"] != 0.0 {
		t.Errorf("stats --json on an empty server = %v", s)
	}
	if qs, ok := s["queues"].([]interface{}); !ok || len(qs) != 0 {
		t.Errorf("queues = %#v, want []", s["queues"])
	}
	var qs []queue.QueueSize
	mustJSON(t, mustCLI(t, srv, "queues", "--json"), &qs)
	if qs == nil || len(qs) != 0 {
		t.Errorf("queues --json = %#v, want []", qs)
	}
}

func TestCLIQueues(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t)
	out := mustCLI(t, srv, "queues")
	wantLines(t, out, "QUEUE  SIZE", "empty  0", "high   2", "low    1")
	var qs []queue.QueueSize
	mustJSON(t, mustCLI(t, srv, "queues", "--json"), &qs)
	if want := []queue.QueueSize{{Queue: "empty", Size: 0}, {Queue: "high", Size: 2}, {Queue: "low", Size: 1}}; !equalSizes(qs, want) {
		t.Errorf("queues --json = %+v, want %+v", qs, want)
	}
}

func TestCLIWorkers(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t)
	out := mustCLI(t, srv, "workers")
	wantLines(t, out,
		"high Archive since 2026-11-27T08:50:02Z",
		"paused since 2026-11-27T08:55:00Z",
		"idle",
		"4242", "high,low",
		"2026-11-27T08:50:00Z", "2026-11-27T08:51:00Z") // started, heartbeat: one human time format
	var ws []queue.WorkerInfo
	mustJSON(t, mustCLI(t, srv, "workers", "--json"), &ws)
	if len(ws) != 3 {
		t.Fatalf("workers --json: %d workers, want 3: %+v", len(ws), ws)
	}
	busy, idle, paused := ws[0], ws[1], ws[2] // sorted by id
	if busy.ID != busyWorker || busy.Host != "vm" || busy.PID != 4242 || strings.Join(busy.Queues, ",") != "high,low" ||
		busy.State != "working" || busy.Queue != "high" || busy.Class != "Archive" || busy.RunAt != "2026-11-27T08:50:02Z" ||
		busy.Started != "2026-11-27 08:50:00 +0000" || busy.Heartbeat != "2026-11-27T08:51:00+00:00" {
		t.Errorf("busy worker = %+v", busy)
	}
	if idle.ID != idleWorker || idle.State != "idle" || idle.Class != "" || strings.Join(idle.Queues, ",") != "*" {
		t.Errorf("idle worker = %+v", idle)
	}
	if paused.ID != pausedWkr || paused.State != "paused" || paused.Class != "" {
		t.Errorf("paused worker = %+v", paused)
	}
}

// failedJSON is what failed list --json prints per record.
type failedJSON struct {
	Index     int             `json:"index"`
	FailedAt  string          `json:"failed_at"`
	Queue     string          `json:"queue"`
	Class     string          `json:"class"`
	Exception string          `json:"exception"`
	Error     string          `json:"error"`
	Worker    string          `json:"worker"`
	RetriedAt string          `json:"retried_at"`
	Payload   json.RawMessage `json:"payload"`
}

func TestCLIFailedList(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t)
	out := mustCLI(t, srv, "failed", "list")
	lines := strings.Split(out, "\n")
	if len(lines) != 3 {
		t.Fatalf("failed list: %d lines, want a header and one line per record:\n%s", len(lines), out)
	}
	wantLines(t, lines[0], "INDEX", "FAILED_AT", "QUEUE", "CLASS", "EXCEPTION", "ERROR")
	wantLines(t, lines[1], "0  ", "2026-11-27T08:50:09Z", "trace", "Fail", "RuntimeError", "bad thing")
	wantLines(t, lines[2], "1  ", "2026-11-27T09:01:00Z", "images", "Resize", "Resque::DirtyExit", "SIGKILL second line")
	if strings.Index(lines[1], "trace") != strings.Index(lines[2], "images") {
		t.Errorf("columns not aligned:\n%s", out)
	}

	var rows []failedJSON
	mustJSON(t, mustCLI(t, srv, "failed", "list", "--json"), &rows)
	if len(rows) != 2 || rows[0].Index != 0 || rows[0].Class != "Fail" || rows[0].Queue != "trace" || rows[0].Worker != "vm:1873:trace" ||
		rows[1].Index != 1 || rows[1].Class != "Resize" || rows[1].Error != "Child process received unhandled signal pid 77: SIGKILL\nsecond line" ||
		compact(t, rows[1].Payload) != compact(t, []byte(oddPayload)) {
		t.Errorf("failed list --json = %+v", rows)
	}

	for _, tc := range []struct {
		args []string
		want []int
	}{
		{[]string{"--queue", "images"}, []int{1}},
		{[]string{"--class", "Fail"}, []int{0}},
		{[]string{"--class", "Fail", "--queue", "images"}, []int{}},
		{[]string{"--start", "1"}, []int{1}},
		{[]string{"--start", "0", "--count", "1"}, []int{0}},
		{[]string{"--start", "5"}, []int{}},
	} {
		var rows []failedJSON
		mustJSON(t, mustCLI(t, srv, append([]string{"failed", "list", "--json"}, tc.args...)...), &rows)
		got := []int{}
		for _, r := range rows {
			got = append(got, r.Index)
		}
		if jsonString(got) != jsonString(tc.want) {
			t.Errorf("failed list %v: indexes %v, want %v", tc.args, got, tc.want)
		}
	}
}

// compact is JSON without insignificant space: --json output is indented.
func compact(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact %s: %v", b, err)
	}
	return buf.String()
}

func jsonString(v interface{}) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func lrangeKey(t *testing.T, srv *redistest.Server, key string) []string {
	t.Helper()
	v, err := redis.Strings(srv.Do(t, "LRANGE", key, 0, -1), nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCLIFailedRetry(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t)
	ruby := rubyFailure(t)
	before := time.Now().UTC().Truncate(time.Second)
	out := mustCLI(t, srv, "failed", "retry", "0")
	wantLines(t, out, "retried 0", "Fail", "trace")
	after := time.Now().UTC()

	if got := lrangeKey(t, srv, queue.QueueKey(ns, "trace")); len(got) != 1 || got[0] != `{"class":"Fail","args":["bad thing"]}` {
		t.Errorf("queue trace = %q, want the payload byte for byte", got)
	}
	if ok, _ := redis.Bool(srv.Do(t, "SISMEMBER", queue.QueuesKey(ns), "trace"), nil); !ok {
		t.Error("trace not added to the queues set")
	}
	recs := lrangeKey(t, srv, queue.FailedKey(ns))
	if len(recs) != 2 || recs[1] != secondFailure {
		t.Fatalf("failed list = %q", recs)
	}
	// The record keeps every byte and gains retried_at, last, as Ruby's
	// hash puts it.
	prefix := ruby[:len(ruby)-1] + `,"retried_at":"`
	if !strings.HasPrefix(recs[0], prefix) || !strings.HasSuffix(recs[0], ` UTC"}`) {
		t.Fatalf("retried record = %s", recs[0])
	}
	stamp := strings.TrimSuffix(strings.TrimPrefix(recs[0], prefix), `"}`)
	at, err := time.Parse("2006/01/02 15:04:05 MST", stamp)
	if err != nil || at.Before(before) || at.After(after) {
		t.Errorf("retried_at %q (%v): want Ruby's %%Y/%%m/%%d %%H:%%M:%%S %%Z between %v and %v", stamp, err, before, after)
	}

	// The payload with spacing, escapes and extra fields goes back as is.
	mustCLI(t, srv, "failed", "retry", "1")
	if got := lrangeKey(t, srv, queue.QueueKey(ns, "images")); len(got) != 1 || got[0] != oddPayload {
		t.Errorf("queue images = %q, want %q", got, oddPayload)
	}
	var rows []failedJSON
	mustJSON(t, mustCLI(t, srv, "failed", "list", "--json"), &rows)
	if len(rows) != 2 || rows[0].RetriedAt != stamp || rows[1].RetriedAt == "" {
		t.Errorf("after retry, failed list --json = %+v", rows)
	}

	// --all retries every record again; a record retried before keeps
	// one retried_at.
	wantLines(t, mustCLI(t, srv, "failed", "retry", "--all"), "retried 2")
	if n := len(lrangeKey(t, srv, queue.QueueKey(ns, "trace"))); n != 2 {
		t.Errorf("after retry --all, trace holds %d jobs, want 2", n)
	}
	for _, r := range lrangeKey(t, srv, queue.FailedKey(ns)) {
		if strings.Count(r, "retried_at") != 1 {
			t.Errorf("record after two retries: %s", r)
		}
	}

	if _, errOut, code := adminCLI(t, srv, "failed", "retry", "2"); code != 3 || !strings.Contains(errOut, "no failure at index 2") {
		t.Errorf("retry past the end: exit %d, stderr %q; want 3", code, errOut)
	}
}

func TestCLIFailedRemove(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t)
	srv.Do(t, "RPUSH", queue.FailedKey(ns), rubyFailure(t)) // a duplicate of record 0, at 2
	wantLines(t, mustCLI(t, srv, "failed", "remove", "1"), "removed 1")
	ruby := rubyFailure(t)
	if got := lrangeKey(t, srv, queue.FailedKey(ns)); len(got) != 2 || got[0] != ruby || got[1] != ruby {
		t.Errorf("after remove 1, failed list = %q", got)
	}
	if _, errOut, code := adminCLI(t, srv, "failed", "remove", "2"); code != 3 {
		t.Errorf("remove past the end: exit %d, stderr %q; want 3", code, errOut)
	}
	wantLines(t, mustCLI(t, srv, "failed", "remove", "--all"), "removed 2")
	if n, _ := redis.Int(srv.Do(t, "EXISTS", queue.FailedKey(ns)), nil); n != 0 {
		t.Error("remove --all left the failed list")
	}
}

func TestCLIFailedClear(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t)
	wantLines(t, mustCLI(t, srv, "failed", "clear"), "removed 2")
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.FailedKey(ns)), nil); n != 0 {
		t.Errorf("failed list holds %d after clear", n)
	}
	wantLines(t, mustCLI(t, srv, "failed", "clear"), "removed 0")
	if out := mustCLI(t, srv, "failed", "list", "--json"); out != "[]" {
		t.Errorf("failed list --json after clear = %s, want []", out)
	}
}

func TestCLIFailedUsage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, args := range [][]string{
		{"failed", "retry"},
		{"failed", "retry", "x"},
		{"failed", "retry", "--", "-1"},
		{"failed", "remove", "0", "1"},
		{"failed", "list", "--count", "-1"},
		{"stats", "extra"},
	} {
		if _, errOut, code := adminCLI(t, srv, args...); code != 2 || !strings.Contains(errOut, "Try: resqued") {
			t.Errorf("resqued %v: exit %d, stderr %q; want 2 with a hint", args, code, errOut)
		}
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// cliStdin runs a resqued subcommand with stdin as its standard input and
// returns its stdout, stderr and exit code.
func cliStdin(t *testing.T, srv *redistest.Server, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return cliIO(t, srv, nil, stdin, args...)
}

func lrange(t *testing.T, srv *redistest.Server, q string) []string {
	t.Helper()
	v, err := redis.Strings(srv.Do(t, "LRANGE", queue.QueueKey(ns, q), 0, -1), nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var jobID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestBulkEnqueue_Stdin: enqueue --stdin takes JSON lines, one job each,
// with the queue defaulting to --queue, and prints one id per line in
// input order; the payloads are what single enqueue writes.
func TestBulkEnqueue_Stdin(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	in := strings.Join([]string{
		`{"class":"Resize","args":[42,"thumb",{"w":100}],"queue":"images"}`,
		``,
		`{"class":"Mailers::Welcome","args":["a@example.com"]}`,
		`  {"class":"NoArgs"}  `,
		`{"class":"Resize","args":[7],"queue":"images"}`,
		`{"queue":"other","class":"Big","args":[1e700, 12345678901234567890]}`,
	}, "\n") // no final newline: the last line still counts
	out, stderr, code := cliStdin(t, srv, in, "enqueue", "--stdin", "--queue", "mail")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	ids := strings.Split(out, "\n")
	if len(ids) != 5 {
		t.Fatalf("printed %d ids, want 5: %q", len(ids), out)
	}
	for _, id := range ids {
		if !jobID.MatchString(id) {
			t.Errorf("id %q: want 32 hex digits", id)
		}
	}
	want := map[string][]string{
		"images": {
			`{"class":"Resize","args":[42,"thumb",{"w":100}],"id":"` + ids[0] + `"}`,
			`{"class":"Resize","args":[7],"id":"` + ids[3] + `"}`,
		},
		"mail": {
			`{"class":"Mailers::Welcome","args":["a@example.com"],"id":"` + ids[1] + `"}`,
			`{"class":"NoArgs","args":[],"id":"` + ids[2] + `"}`,
		},
		// Numbers arrive as written (compacted, not rounded).
		"other": {`{"class":"Big","args":[1e700,12345678901234567890],"id":"` + ids[4] + `"}`},
	}
	for q, payloads := range want {
		if got := lrange(t, srv, q); strings.Join(got, "\n") != strings.Join(payloads, "\n") {
			t.Errorf("queue %s holds\n%s\nwant\n%s", q, strings.Join(got, "\n"), strings.Join(payloads, "\n"))
		}
	}
	qs, _ := redis.Strings(srv.Do(t, "SMEMBERS", queue.QueuesKey(ns)), nil)
	sort.Strings(qs)
	if strings.Join(qs, ",") != "images,mail,other" {
		t.Errorf("queues set = %v", qs)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", status.Key(ns, ids[0])), nil); n != 0 {
		t.Error("untracked bulk enqueue created a status")
	}
}

// TestBulkEnqueue_ManyBatches: more jobs than one pipelined batch holds
// all arrive, in order, across interleaved queues; --quiet prints the
// count only; --track creates every status.
func TestBulkEnqueue_ManyBatches(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const n = 2500
	var b strings.Builder
	for i := 0; i < n; i++ {
		q := "even"
		if i%2 == 1 {
			q = "odd"
		}
		fmt.Fprintf(&b, `{"class":"Job","args":[%d],"queue":%q}`+"\n", i, q)
	}
	out, stderr, code := cliStdin(t, srv, b.String(), "enqueue", "--stdin", "--quiet")
	if code != 0 || out != strconv.Itoa(n) {
		t.Fatalf("exit %d, stdout %q (want %d), stderr %s", code, out, n, stderr)
	}
	for q, first := range map[string]int{"even": 0, "odd": 1} {
		got := lrange(t, srv, q)
		if len(got) != n/2 {
			t.Fatalf("queue %s holds %d jobs, want %d", q, len(got), n/2)
		}
		for k, p := range got {
			var j struct {
				Class string
				Args  []int
			}
			if err := json.Unmarshal([]byte(p), &j); err != nil || j.Class != "Job" || len(j.Args) != 1 || j.Args[0] != first+2*k {
				t.Fatalf("queue %s[%d] = %s, want args [%d]", q, k, p, first+2*k)
			}
		}
	}

	out, stderr, code = cliStdin(t, srv, strings.Repeat(`{"class":"T","queue":"tracked"}`+"\n", 1200), "enqueue", "--stdin", "--track")
	if code != 0 {
		t.Fatalf("--track: exit %d: %s", code, stderr)
	}
	ids := strings.Split(out, "\n")
	if len(ids) != 1200 {
		t.Fatalf("--track printed %d ids", len(ids))
	}
	for _, id := range []string{ids[0], ids[999], ids[1199]} {
		if st, _, code := cli(t, srv, "status", id); code != 0 || st != "waiting" {
			t.Errorf("status %s = %q (exit %d), want waiting", id, st, code)
		}
	}
}

// TestBulkEnqueue_StopsAtInvalidLine: the lines before the first invalid
// one are enqueued, it and the rest are not, and the message names it.
func TestBulkEnqueue_StopsAtInvalidLine(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, tc := range []struct{ bad, says string }{
		{`{"class":"../etc/passwd"}`, "class"},
		{`{"class":"A","args":{"not":"array"}}`, "array"},
		{`{"class":"A","qeue":"typo"}`, `unknown field "qeue"`},
		{`{"class":"A","queue":"a,b"}`, "comma"},
		{`not json`, "line 3"},
		{`{"class":"A"} {"class":"B"}`, "one JSON object per line"},
	} {
		srv.Do(t, "FLUSHALL")
		in := `{"class":"A","args":[1]}` + "\n\n" + tc.bad + "\n" + `{"class":"A","args":[2]}` + "\n"
		out, stderr, code := cliStdin(t, srv, in, "enqueue", "--stdin")
		if code != 2 {
			t.Errorf("%s: exit %d, want 2", tc.bad, code)
		}
		if !strings.Contains(stderr, "line 3") || !strings.Contains(stderr, tc.says) || !strings.Contains(stderr, "the 1 jobs before it were enqueued") {
			t.Errorf("%s: stderr %q, want line 3, %q and the count", tc.bad, stderr, tc.says)
		}
		got := lrange(t, srv, "default")
		if len(got) != 1 || !strings.Contains(got[0], `"args":[1]`) || !jobID.MatchString(out) || !strings.Contains(got[0], out) {
			t.Errorf("%s: queue holds %q, printed %q; want only the first job and its id", tc.bad, got, out)
		}
	}
	srv.Do(t, "FLUSHALL")
	for _, args := range [][]string{
		{"enqueue", "--stdin", "A"},
		{"enqueue", "--stdin", "--args", "[1]"},
		{"enqueue", "--stdin", "--wait"},
		{"enqueue", "--quiet", "A"},
		{"enqueue", "--stdin", "--queue", "bad queue"},
	} {
		if _, _, code := cliStdin(t, srv, `{"class":"A"}`+"\n", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "default")), nil); n != 0 {
		t.Errorf("refused invocations enqueued %d jobs", n)
	}
}

// TestBulkEnqueue_DaemonRunsThem: bulk-enqueued jobs are ordinary jobs
// to the daemon.
func TestBulkEnqueue_DaemonRunsThem(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	outDir := t.TempDir()
	handler(t, dir, "Save.sh", `cat > "`+outDir+`/$RESQUE_JOB_ID"`)
	var b strings.Builder
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, `{"class":"Save","args":[%d],"queue":"q%d"}`+"\n", i, i%3)
	}
	out, stderr, code := cliStdin(t, srv, b.String(), "enqueue", "--stdin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	d := start(t, srv, dir, "--queues", "*", "--interval", "0")
	if err := d.wait(60 * time.Second); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if n := getInt(t, srv, queue.StatKey(ns, "processed")); n != 20 {
		t.Errorf("processed = %d, want 20", n)
	}
	for i, id := range strings.Split(out, "\n") {
		got, err := os.ReadFile(outDir + "/" + id)
		if err != nil || string(got) != fmt.Sprintf("[%d]", i) {
			t.Errorf("job %d (%s) got args %q (%v)", i, id, got, err)
		}
	}
}

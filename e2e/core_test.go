package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// TestDaemon_Outcomes runs one daemon through every kind of job outcome and
// checks what lands in Redis.
func TestDaemon_Outcomes(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	outDir := t.TempDir()
	out := filepath.Join(outDir, "okid")
	handler(t, dir, "Ok.sh", `f="`+outDir+`/$RESQUE_JOB_ID"; cat > "$f"; echo >> "$f"; echo "job $RESQUE_JOB_ID class $RESQUE_CLASS queue $RESQUE_QUEUE worker $RESQUE_WORKER" >> "$f"`)
	handler(t, dir, "Exit3", `echo "about to fail" >&2; echo "line two" >&2; exit 3`)
	handler(t, dir, "Suicide", `kill -KILL $$`)
	handler(t, dir, "Mailers/Welcome", `exit 0`)
	if err := os.WriteFile(filepath.Join(dir, "NotExec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "pwned")
	handler(t, filepath.Dir(dir), "Escape", `touch "`+secret+`"`)

	jobs := []string{
		`{"class":"Ok","args":[1,"two",{"three":3}],"id":"okid","extra":"kept"}`,
		`{"class":"Exit3","args":[]}`,
		`{"class":"Suicide","args":[]}`,
		`{"class":"Missing","args":[]}`,
		`{"class":"NotExec","args":[]}`,
		`{"class":"Mailers::Welcome","args":[]}`,
		`{"class":"../Escape","args":[]}`,
		`{"class":"..","args":[]}`,
		`{"class":".hidden","args":[]}`,
		`{"class":"a/b","args":[]}`,
		`{"class":"A::..::Escape","args":[]}`,
		`{"class":"Ok\u0000x","args":[]}`,
		`{"class":"` + strings.Repeat("A", 300) + `","args":[]}`,
		`{"class":"Ok","args":`,
		`not json at all`,
		`{"class":"Ok","args":{"not":"an array"}}`,
		`{"args":[]}`,
	}
	for _, j := range jobs {
		push(t, srv, "jobs", j)
	}
	d := start(t, srv, dir, "--queues", "jobs")
	waitProcessed(t, srv, len(jobs))

	fs := failures(t, srv)
	byPayload := map[string]queue.Failure{}
	for _, f := range fs {
		byPayload[string(f.Payload)] = f
		// What resque-web needs of every record.
		if f.Worker == "" || f.Queue != "jobs" || f.Backtrace == nil {
			t.Errorf("record missing worker/queue/backtrace: %+v", f)
		}
		if _, err := time.Parse(queue.FailedAtFormat, f.FailedAt); err != nil {
			t.Errorf("failed_at %q: %v", f.FailedAt, err)
		}
	}
	if got, want := len(fs), len(jobs)-2; got != want {
		t.Errorf("%d failures, want %d (all but Ok and Mailers::Welcome)", got, want)
	}
	check := func(payload, exc, errSub string) {
		t.Helper()
		key := payload
		if !json.Valid([]byte(payload)) {
			b, _ := json.Marshal(payload)
			key = string(b)
		}
		f, ok := byPayload[key]
		if !ok {
			t.Errorf("no failure for %s", payload)
			return
		}
		if f.Exception != exc || !strings.Contains(f.Error, errSub) {
			t.Errorf("%s: got %s %q, want %s containing %q", payload, f.Exception, f.Error, exc, errSub)
		}
	}
	check(jobs[1], "Resqued::HandlerFailed", "exited with status 3")
	if f := byPayload[jobs[1]]; strings.Join(f.Backtrace, "|") != "about to fail|line two" {
		t.Errorf("backtrace = %q, want the stderr tail", f.Backtrace)
	}
	check(jobs[2], "Resque::DirtyExit", "killed by signal SIGKILL")
	check(jobs[3], "Resqued::NoHandler", "Missing")
	check(jobs[4], "Resqued::NoHandler", "not executable")
	for _, j := range jobs[6:13] {
		check(j, "Resqued::InvalidClass", "invalid class name")
	}
	check(jobs[13], "Resqued::InvalidPayload", "payload is not valid JSON: it ends after")
	check(jobs[14], "Resqued::InvalidPayload", "payload is not valid JSON: found")
	check(jobs[15], "Resqued::InvalidPayload", "not an array")
	check(jobs[16], "Resqued::InvalidPayload", "class")

	if _, err := os.Stat(secret); err == nil {
		t.Fatal("a handler outside the handlers directory was executed")
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.SplitN(string(b), "\n", 2)[0], `[1,"two",{"three":3}]`; got != want {
		t.Errorf("stdin = %q, want %q", got, want)
	}
	if !regexp.MustCompile(`job okid class Ok queue jobs worker [^:]+:\d+:jobs`).Match(b) {
		t.Errorf("env = %q", b)
	}
	if got := getInt(t, srv, queue.StatKey(ns, "failed")); got != len(jobs)-2 {
		t.Errorf("stat:failed = %d", got)
	}

	// Still serving after all that.
	push(t, srv, "jobs", `{"class":"Ok","args":["after"]}`)
	waitProcessed(t, srv, len(jobs)+1)
	d.signal(3) // QUIT
	if err := d.wait(20 * time.Second); err != nil {
		t.Fatalf("exit after QUIT: %v", err)
	}
}

func TestDaemon_Priority(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "order")
	handler(t, dir, "Rec", `echo "$RESQUE_QUEUE" >> "`+log+`"`)
	for _, q := range []string{"low", "mid", "high", "low", "mid", "high"} {
		push(t, srv, q, `{"class":"Rec","args":[]}`)
	}
	start(t, srv, dir, "--queues", "high,mid,low")
	waitProcessed(t, srv, 6)
	b, _ := os.ReadFile(log)
	if got, want := strings.Fields(string(b)), "high high mid mid low low"; strings.Join(got, " ") != want {
		t.Errorf("order = %v, want %s", got, want)
	}
}

func TestDaemon_WildcardPicksUpNewQueue(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Ok", `exit 0`)
	d := start(t, srv, dir, "--queues", "*", "--interval", "0.2")
	redistest.Eventually(t, 30*time.Second, func() bool {
		n, _ := redis.Int(srv.Do(t, "SCARD", queue.WorkersKey(ns)), nil)
		return n == 1
	}, "worker never registered")
	push(t, srv, "brand_new", `{"class":"Ok","args":[]}`)
	waitProcessed(t, srv, 1)
	// A handler added while the daemon runs is used without a restart.
	handler(t, dir, "Later.py", `exit 0`)
	push(t, srv, "another", `{"class":"Later","args":[]}`)
	waitProcessed(t, srv, 2)
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 0 {
		t.Errorf("failed = %d; output:\n%s", n, d.out.String())
	}
}

func TestDaemon_TrackedStatus(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	gate := t.TempDir()
	// Hold runs until the test creates <gate>/<token>, then exits with the
	// code given as the first arg.
	handler(t, dir, "Hold", `code=$(tr -dc 0-9 ); while [ ! -e "`+gate+`/$RESQUE_JOB_ID" ]; do sleep 0.01; done; exit $code`)

	stat := func(tok string) string {
		out, _, _ := cli(t, srv, "status", tok)
		return strings.SplitN(out, "\n", 2)[0] // the state; detail lines follow
	}
	okTok, stderr, code := cli(t, srv, "enqueue", "--queue", "tracked", "--track", "Hold", "0")
	if code != 0 {
		t.Fatalf("enqueue: %d %s", code, stderr)
	}
	failTok, _, _ := cli(t, srv, "enqueue", "--queue", "tracked", "--track", "Hold", "7")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(okTok) {
		t.Fatalf("token = %q", okTok)
	}
	if got := stat(okTok); got != "waiting" {
		t.Fatalf("before the daemon: %q", got)
	}
	start(t, srv, dir, "--queues", "tracked")
	for _, tc := range []struct {
		tok, final string
	}{{okTok, "complete"}, {failTok, "failed"}} {
		redistest.Eventually(t, 30*time.Second, func() bool { return stat(tc.tok) == "running" }, "%s never running", tc.tok)
		if err := os.WriteFile(filepath.Join(gate, tc.tok), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		redistest.Eventually(t, 30*time.Second, func() bool { return stat(tc.tok) == tc.final }, "%s never %s", tc.tok, tc.final)
		ttl, _ := redis.Int(srv.Do(t, "TTL", status.Key(ns, tc.tok)), nil)
		if ttl < 86300 || ttl > 86400 {
			t.Errorf("%s: ttl %d, want 24 h", tc.final, ttl)
		}
	}
	// --stop forgets it; an unknown token exits nonzero.
	if _, _, code := cli(t, srv, "status", "--stop", okTok); code != 0 {
		t.Errorf("status --stop exit %d", code)
	}
	if _, stderr, code := cli(t, srv, "status", okTok); code == 0 || !strings.Contains(stderr, "unknown token") {
		t.Errorf("stopped token: exit %d, %q", code, stderr)
	}
}

// TestDaemon_PhpTracked: a php-resque job carries its token as the payload
// id and its status key was created by php-resque.
func TestDaemon_PhpTracked(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Echo", `cat >/dev/null`)
	srv.Do(t, "SET", status.Key(ns, "a2643739e5cd2fc1beaab0c5b5083b33"), `{"status":1,"updated":1795772481,"started":1795772481}`)
	push(t, srv, "test", `{"class":"Echo","args":[{"n":1,"s":"one"}],"id":"a2643739e5cd2fc1beaab0c5b5083b33"}`)
	push(t, srv, "test", `{"class":"Echo","args":[{"n":2}],"id":"untracked0000000000000000000000"}`)
	start(t, srv, dir, "--queues", "test")
	waitProcessed(t, srv, 2)
	got, _ := redis.String(srv.Do(t, "GET", status.Key(ns, "a2643739e5cd2fc1beaab0c5b5083b33")), nil)
	if !strings.HasPrefix(got, `{"status":4,"updated":`) || !strings.HasSuffix(got, `,"started":1795772481}`) {
		t.Errorf("status = %s", got)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", status.Key(ns, "untracked0000000000000000000000")), nil); n != 0 {
		t.Error("an untracked job gained a status")
	}
}

func TestEnqueue_CLI(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	id, stderr, code := cli(t, srv, "enqueue", "--queue", "q1", "Resize", "42", "hello", `{"w":100}`, "true", "[1]")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, _ := redis.String(srv.Do(t, "LPOP", queue.QueueKey(ns, "q1")), nil)
	if want := `{"class":"Resize","args":[42,"hello",{"w":100},true,[1]],"id":"` + id + `"}`; raw != want {
		t.Errorf("payload = %s, want %s", raw, want)
	}
	if ok, _ := redis.Bool(srv.Do(t, "SISMEMBER", queue.QueuesKey(ns), "q1"), nil); !ok {
		t.Error("queue not added to the queues set")
	}
	if _, _, code := cli(t, srv, "enqueue", "--args", `["a",{"b":[1,2]}]`, "Mailers::Welcome"); code != 0 {
		t.Errorf("--args exit %d", code)
	}
	raw, _ = redis.String(srv.Do(t, "LPOP", queue.QueueKey(ns, "default")), nil)
	if !strings.HasPrefix(raw, `{"class":"Mailers::Welcome","args":["a",{"b":[1,2]}],"id":"`) {
		t.Errorf("payload = %s", raw)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", status.Key(ns, id)), nil); n != 0 {
		t.Error("untracked enqueue created a status")
	}
	for _, args := range [][]string{
		{"enqueue", "../etc/passwd"},
		{"enqueue", ".hidden"},
		{"enqueue", ""},
		{"enqueue", "--args", "[1,", "A"},
		{"enqueue", "--args", `{"a":1}`, "A"},
		{"enqueue", "--queue", "a,b", "A"},
		{"status"},
	} {
		if _, stderr, code := cli(t, srv, args...); code != 2 || stderr == "" {
			t.Errorf("%q: exit %d (want 2), stderr %q", args, code, stderr)
		}
	}
	if _, stderr, code := cli(t, srv, "status", "feedface"); code == 0 || code == 2 {
		t.Errorf("unknown token: exit %d %s", code, stderr)
	}
}

// TestDaemon_PhpNamespacedClass: php-resque's App\Jobs\SendMail runs
// handlers/App/Jobs/SendMail, as Ruby's App::Jobs::SendMail does.
func TestDaemon_PhpNamespacedClass(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "ran")
	handler(t, dir, "App/Jobs/SendMail.php", `echo "$RESQUE_CLASS" >> "`+out+`"`)
	push(t, srv, "php", `{"class":"App\\Jobs\\SendMail","args":[{"to":"a@b.c"}],"id":"0123456789abcdef0123456789abcdef"}`)
	push(t, srv, "php", `{"class":"App::Jobs::SendMail","args":[]}`)
	start(t, srv, dir, "--queues", "php", "--only-known-classes")
	waitProcessed(t, srv, 2)
	if b, _ := os.ReadFile(out); string(b) != "App\\Jobs\\SendMail\nApp::Jobs::SendMail\n" {
		t.Errorf("ran %q", b)
	}
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 0 {
		t.Errorf("failed = %d: %+v", n, failures(t, srv))
	}
}

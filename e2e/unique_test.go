package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// uniqueLock is the resque-loner lock key of class with args on q.
func uniqueLock(t *testing.T, q, class, args string) string {
	t.Helper()
	d, err := queue.UniqueDigest(class, []byte(args))
	if err != nil {
		t.Fatal(err)
	}
	return queue.UniqueLockKey(ns, q, d)
}

// TestUnique_Enqueue: enqueue --unique refuses a copy while the first
// is queued and while it runs, printing the first's id (exit 0, or 1
// with --fail-on-duplicate); once the job ended its lock is gone and
// the next copy is enqueued. A lock a Ruby app's resque-loner wrote is
// honoured; a lock expires with its TTL; a bad TTL is a usage error.
func TestUnique_Enqueue(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, tmp := t.TempDir(), t.TempDir()
	gate, started := filepath.Join(tmp, "gate"), filepath.Join(tmp, "started")
	handler(t, dir, "Slow", `touch "`+started+`"; while [ ! -f "`+gate+`" ]; do sleep 0.05; done`)

	id1, _, code := cli(t, srv, "enqueue", "--unique", "--queue", "u", "Slow", "1")
	if code != 0 || len(id1) != 32 {
		t.Fatalf("first enqueue: %q, exit %d", id1, code)
	}
	out, errOut, code := cli(t, srv, "enqueue", "--unique", "--queue", "u", "Slow", "1")
	if out != id1 || code != 0 || !strings.Contains(errOut, "not enqueued") {
		t.Errorf("second enqueue: stdout %q, stderr %q, exit %d; want %s, a note, exit 0", out, errOut, code, id1)
	}
	out, _, code = cli(t, srv, "enqueue", "--unique", "--fail-on-duplicate", "--queue", "u", "Slow", "1")
	if out != id1 || code != 1 {
		t.Errorf("with --fail-on-duplicate: stdout %q, exit %d; want %s, exit 1", out, code, id1)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "u")), nil); n != 1 {
		t.Errorf("queue u holds %d jobs, want 1", n)
	}
	lock := uniqueLock(t, "u", "Slow", "[1]")
	if v, _ := redis.String(srv.Do(t, "GET", lock), nil); v != "1" {
		t.Errorf("resque-loner lock %s = %q, want \"1\"", lock, v)
	}

	d := start(t, srv, dir, "--queues", "u")
	redistest.Eventually(t, 30*time.Second, func() bool { _, err := os.Stat(started); return err == nil }, "Slow never started")
	if out, _, code := cli(t, srv, "enqueue", "--unique", "--queue", "u", "Slow", "1"); out != id1 || code != 0 {
		t.Errorf("enqueue while it runs: %q, exit %d; want %s", out, code, id1)
	}
	os.WriteFile(gate, nil, 0o644)
	waitProcessed(t, srv, 1)
	redistest.Eventually(t, 10*time.Second, func() bool {
		n, _ := redis.Int(srv.Do(t, "EXISTS", lock), nil)
		return n == 0
	}, "the lock outlived its job")
	if out, _, code := cli(t, srv, "enqueue", "--unique", "--queue", "u", "Slow", "1"); out == id1 || len(out) != 32 || code != 0 {
		t.Errorf("enqueue after the job ended: %q, exit %d; want a new id", out, code)
	}
	waitProcessed(t, srv, 2)
	if fs := failures(t, srv); len(fs) != 0 {
		t.Errorf("failures: %+v", fs)
	}

	// A lock written by resque-loner (Ruby: SET to "1") is honoured.
	srv.Do(t, "SET", uniqueLock(t, "idle", "Mail", `["x",{"b":2,"a":1}]`), "1")
	out, errOut, code = cli(t, srv, "enqueue", "--unique", "--queue", "idle", "--args", `["x",{"a":1,"b":2}]`, "Mail")
	if out != "" || code != 0 || !strings.Contains(errOut, "another app") {
		t.Errorf("enqueue over resque-loner's lock: stdout %q, stderr %q, exit %d", out, errOut, code)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "idle")), nil); n != 0 {
		t.Errorf("queue idle holds %d jobs, want 0", n)
	}

	// A delayed job holds the lock too.
	idD, _, _ := cli(t, srv, "enqueue", "--unique", "--in", "1h", "--queue", "idle", "Later", "1")
	if out, _, _ := cli(t, srv, "enqueue", "--unique", "--queue", "idle", "Later", "1"); out != idD || idD == "" {
		t.Errorf("enqueue of a delayed job's copy printed %q, want %q", out, idD)
	}

	// The TTL: a lock nobody releases expires.
	idE, _, _ := cli(t, srv, "enqueue", "--unique-ttl", "1", "--queue", "idle", "Exp", "1")
	redistest.Eventually(t, 10*time.Second, func() bool {
		n, _ := redis.Int(srv.Do(t, "EXISTS", uniqueLock(t, "idle", "Exp", "[1]")), nil)
		return n == 0
	}, "a 1s lock never expired")
	if out, _, code := cli(t, srv, "enqueue", "--unique", "--queue", "idle", "Exp", "1"); out == idE || code != 0 {
		t.Errorf("enqueue after the lock expired: %q, exit %d; want a new id", out, code)
	}

	for _, ttl := range []string{"0", "-5", "-1m", "soon"} {
		_, errOut, code := cli(t, srv, "enqueue", "--unique-ttl", ttl, "--queue", "idle", "Bad", "1")
		if code != 2 || !strings.Contains(errOut, "--unique-ttl") {
			t.Errorf("--unique-ttl %s: exit %d, stderr %q; want exit 2 naming the flag", ttl, code, errOut)
		}
	}
	if testing.Verbose() {
		t.Log(d.out.String())
	}
}

// TestUnique_Race: 20 concurrent enqueue --unique processes of one job
// enqueue it once; each prints the same id.
func TestUnique_Race(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var wg sync.WaitGroup
	outs, codes := make([]string, 20), make([]int, 20)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], _, codes[i] = cli(t, srv, "enqueue", "--unique", "--queue", "race", "--args", `[{"n":7}]`, "R")
		}()
	}
	wg.Wait()
	for i := range outs {
		if codes[i] != 0 || outs[i] != outs[0] || len(outs[i]) != 32 {
			t.Errorf("enqueue %d: %q, exit %d; want %q, exit 0", i, outs[i], codes[i], outs[0])
		}
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "race")), nil); n != 1 {
		t.Errorf("queue race holds %d jobs, want 1", n)
	}
}

// TestUnique_Payload: payloads pushed by another tool with "unique":
// of two copies running at once, one runs and the other is recorded as
// Resqued::DuplicateJob naming it; a "unique" of 0 is an invalid
// payload; the lock is gone once the job ended.
func TestUnique_Payload(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, tmp := t.TempDir(), t.TempDir()
	gate, runs := filepath.Join(tmp, "gate"), filepath.Join(tmp, "runs")
	handler(t, dir, "Once", `echo "$RESQUE_JOB_ID" >> "`+runs+`"; while [ ! -f "`+gate+`" ]; do sleep 0.05; done`)
	push(t, srv, "p", `{"class":"Once","args":[5],"id":"p1","unique":true}`)
	push(t, srv, "p", `{"class":"Once","args":[5],"id":"p2","unique":60}`)
	push(t, srv, "p", `{"class":"Once","args":[6],"id":"p3","unique":0}`)
	start(t, srv, dir, "--queues", "p", "--count", "2")
	redistest.Eventually(t, 30*time.Second, func() bool { return len(failures(t, srv)) == 2 }, "the duplicate and the bad payload were not recorded")
	os.WriteFile(gate, nil, 0o644)
	waitProcessed(t, srv, 3)
	var dup, bad int
	for _, f := range failures(t, srv) {
		switch {
		case f.Exception == "Resqued::DuplicateJob" && (strings.Contains(f.Error, "job p1 holds") || strings.Contains(f.Error, "job p2 holds")):
			dup++
		case f.Exception == "Resqued::InvalidPayload" && strings.Contains(f.Error, `"unique" is 0`):
			bad++
		default:
			t.Errorf("unexpected failure: %s: %s", f.Exception, f.Error)
		}
	}
	if dup != 1 || bad != 1 {
		t.Errorf("%d duplicate and %d invalid failures, want 1 and 1", dup, bad)
	}
	b, _ := os.ReadFile(runs)
	if n := len(strings.Fields(string(b))); n != 1 {
		t.Errorf("Once ran %d times (%q), want once", n, b)
	}
	lock := uniqueLock(t, "p", "Once", "[5]")
	redistest.Eventually(t, 10*time.Second, func() bool {
		n, _ := redis.Int(srv.Do(t, "EXISTS", lock), nil)
		return n == 0
	}, "the lock outlived its job")
}

// TestUnique_RubyLoner: a job enqueued by a Ruby app with resque-loner
// (no "unique", no id; the lock "1" beside it) holds its lock while it
// runs under a handlers config with unique: true, and the lock is gone
// once it ended; metrics and stats count it while it runs. Without the
// config the lock stays, as resqued cannot know the class is unique
// (docs/operations.md, Unique jobs).
func TestUnique_RubyLoner(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, tmp := t.TempDir(), t.TempDir()
	gate, started := filepath.Join(tmp, "gate"), filepath.Join(tmp, "started")
	handler(t, dir, "Sync", `touch "`+started+`"; while [ ! -f "`+gate+`" ]; do sleep 0.05; done`)
	handler(t, dir, "Plain", `exit 0`)
	conf := filepath.Join(tmp, "handlers.yml")
	if err := os.WriteFile(conf, []byte("classes:\n  Sync:\n    unique: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// As resque-loner's Resque::Job.create_with_loner writes them.
	lock := uniqueLock(t, "r", "Sync", `[{"a":1}]`)
	srv.Do(t, "SADD", queue.QueuesKey(ns), "r")
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "r"), `{"class":"Sync","args":[{"a":1}]}`)
	srv.Do(t, "SET", lock, "1")

	addr := freeAddr(t)
	start(t, srv, dir, "--queues", "r", "--handlers-config", conf, "--metrics", addr)
	redistest.Eventually(t, 30*time.Second, func() bool { _, err := os.Stat(started); return err == nil }, "Sync never started")
	if v, _ := redis.String(srv.Do(t, "GET", lock), nil); v != "1" {
		t.Errorf("while it runs, lock = %q, want \"1\"", v)
	}
	var body string
	redistest.Eventually(t, 30*time.Second, func() bool {
		code, b := httpGet(t, "http://"+addr+"/metrics")
		body = b
		return code == 200 && strings.Contains(body, "resqued_unique_locks 1\n")
	}, "metrics while it runs lack resqued_unique_locks 1:\n%s", lastBody{&body})
	out, _, _ := cli(t, srv, "stats")
	wantLines(t, out, "unique     1 locks held")
	os.WriteFile(gate, nil, 0o644)
	waitProcessed(t, srv, 1)
	redistest.Eventually(t, 10*time.Second, func() bool {
		n, _ := redis.Int(srv.Do(t, "EXISTS", lock), nil)
		return n == 0
	}, "resque-loner's lock outlived its job")
	var s struct {
		UniqueLocks *int `json:"unique_locks"`
	}
	mustJSON(t, mustCLI(t, srv, "stats", "--json"), &s)
	if s.UniqueLocks == nil || *s.UniqueLocks != 0 {
		t.Errorf("stats --json unique_locks = %v, want 0", s.UniqueLocks)
	}

	// The documented limitation: a class not configured unique leaves
	// resque-loner's lock behind (until its loner_ttl, if any).
	plain := uniqueLock(t, "r", "Plain", `[]`)
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "r"), `{"class":"Plain","args":[]}`)
	srv.Do(t, "SET", plain, "1")
	waitProcessed(t, srv, 2)
	if v, _ := redis.String(srv.Do(t, "GET", plain), nil); v != "1" {
		t.Errorf("lock of an unconfigured class = %q, want resque-loner's \"1\" left", v)
	}

	// A copy refused because another job holds the lock is counted.
	d, _ := queue.UniqueDigest("Plain", []byte(`[7]`))
	srv.Do(t, "SET", queue.UniqueLockKey(ns, "r", d), "1")
	srv.Do(t, "SET", queue.UniqueHolderKey(ns, "r", d), "elsewhere")
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "r"), `{"class":"Plain","args":[7],"id":"dup","unique":true}`)
	redistest.Eventually(t, 30*time.Second, func() bool {
		code, b := httpGet(t, "http://"+addr+"/metrics")
		body = b
		return code == 200 && strings.Contains(body, "resqued_unique_duplicates_total 1\n")
	}, "metrics lack resqued_unique_duplicates_total 1:\n%s", lastBody{&body})
	if fs := failures(t, srv); len(fs) != 1 || fs[0].Exception != "Resqued::DuplicateJob" {
		t.Errorf("failures: %+v, want the one duplicate", fs)
	}
}

// TestUnique_Orphan: a worker killed with -9 while running a unique job
// (one of a class the config makes unique, without an id; and one with
// "unique" in its payload) is pruned with --on-orphan fail: both fail as
// Resque::DirtyExit and their locks are gone.
func TestUnique_Orphan(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, tmp := t.TempDir(), t.TempDir()
	handler(t, dir, "Hang", `touch "`+tmp+`/started.$$"; exec sleep 1000`)
	conf := filepath.Join(tmp, "handlers.yml")
	if err := os.WriteFile(conf, []byte("classes:\n  Hang:\n    unique: 1h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id, _, code := cli(t, srv, "enqueue", "--unique", "--queue", "o", "--args", `[1]`, "Hang")
	if code != 0 || id == "" {
		t.Fatalf("enqueue --unique: %q, exit %d", id, code)
	}
	byPayload := uniqueLock(t, "o", "Hang", `[1]`)
	byConfig := uniqueLock(t, "o", "Hang", `[2]`)
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "o"), `{"class":"Hang","args":[2]}`)
	srv.Do(t, "SET", byConfig, "1")

	// Two single-worker daemons, one job each: a supervisor killed -9
	// would leave its workers running.
	var firsts []*daemon
	for n := 1; n <= 2; n++ {
		firsts = append(firsts, start(t, srv, dir, "--queues", "o", "--handlers-config", conf))
		redistest.Eventually(t, 30*time.Second, func() bool {
			m, _ := filepath.Glob(filepath.Join(tmp, "started.*"))
			return len(m) == n
		}, "job %d never started", n)
	}
	for _, k := range []string{byPayload, byConfig} {
		if n, _ := redis.Int(srv.Do(t, "EXISTS", queue.UniqueHolderKey(ns, "o", strings.TrimPrefix(k, ns+":loners:queue:o:job:"))), nil); n != 1 {
			t.Errorf("lock %s has no holder while its job runs", k)
		}
	}
	for _, d := range firsts {
		d.signal(syscall.SIGKILL)
		d.wait(10 * time.Second)
	}

	start(t, srv, dir, "--queues", "o", "--on-orphan", "fail", "--handlers-config", conf)
	redistest.Eventually(t, 60*time.Second, func() bool { return len(failures(t, srv)) == 2 }, "the orphans were not failed")
	for _, f := range failures(t, srv) {
		if f.Exception != "Resque::DirtyExit" {
			t.Errorf("failure %s: %s", f.Exception, f.Error)
		}
	}
	for _, k := range []string{byPayload, byConfig} {
		if n, _ := redis.Int(srv.Do(t, "EXISTS", k), nil); n != 0 {
			t.Errorf("lock %s outlived its failed orphan", k)
		}
	}
}

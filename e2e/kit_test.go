package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/status"
)

// TestKit_ResultFD: what a handler writes on fd 3 reaches Resque's failed
// list (its own exception, error and backtrace), a tracked job's status
// (progress while it runs, result at the end), and enqueue --wait.
func TestKit_ResultFD(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, gate := t.TempDir(), t.TempDir()
	handler(t, dir, "Resize", `n=$(tr -dc 0-9)
echo '{"progress":0.4,"message":"resizing"}' >&3
while [ ! -e "`+gate+`/go" ]; do sleep 0.02; done
if [ "$n" = 0 ]; then
  echo '{"exception":"ImageError","error":"cannot decode image 0","backtrace":["resize.sh:3 in decode","resize.sh:1 in main"]}' >&3
  echo "stderr is not the backtrace when fd 3 says otherwise" >&2
  exit 1
fi
echo "{\"result\":{\"width\":$n}}" >&3`)
	start(t, srv, dir, "--queues", "img")

	// Progress of a tracked job, then its result through --wait.
	tok, _, code := cli(t, srv, "enqueue", "--queue", "img", "--track", "Resize", "200")
	if code != 0 {
		t.Fatal("enqueue failed")
	}
	redistest.Eventually(t, 30*time.Second, func() bool {
		out, _, _ := cli(t, srv, "status", tok)
		return strings.Contains(out, "running\nprogress: 40% resizing")
	}, "progress never showed in resqued status")
	raw, _ := redis.String(srv.Do(t, "GET", status.Key(ns, tok)), nil)
	var php struct {
		Status int `json:"status"`
	}
	if json.Unmarshal([]byte(raw), &php); php.Status != 2 {
		t.Errorf("php-resque's reader sees status %d in %s", php.Status, raw)
	}
	os.WriteFile(filepath.Join(gate, "go"), nil, 0o644)
	redistest.Eventually(t, 30*time.Second, func() bool {
		out, _, _ := cli(t, srv, "status", tok)
		return out == "complete\nresult: {\"width\":200}"
	}, "result never in status")

	out, stderr, code := cli(t, srv, "enqueue", "--queue", "img", "--wait", "Resize", "300")
	if code != 0 || out != `{"width":300}` {
		t.Errorf("enqueue --wait: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	_, stderr, code = cli(t, srv, "enqueue", "--queue", "img", "--wait", "Resize", "0")
	if code != 1 || !strings.Contains(stderr, "ImageError: cannot decode image 0") {
		t.Errorf("enqueue --wait of a failing job: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = cli(t, srv, "enqueue", "--queue", "nobody-listens", "--wait", "--wait-timeout", "300ms", "Resize", "1")
	if code != 124 || !strings.Contains(stderr, "still waiting") {
		t.Errorf("enqueue --wait timeout: exit %d, stderr %q", code, stderr)
	}

	fs := failures(t, srv)
	if len(fs) != 1 {
		t.Fatalf("failures = %+v", fs)
	}
	f := fs[0]
	if f.Exception != "ImageError" || f.Error != "cannot decode image 0" || strings.Join(f.Backtrace, "|") != "resize.sh:3 in decode|resize.sh:1 in main" {
		t.Errorf("failure record = %+v, want the handler's own exception, error and backtrace", f)
	}
}

func TestKit_TryAndHandlers(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t) // try must not need it; cli sets REDIS_URL anyway
	dir := t.TempDir()
	handler(t, dir, "Ok.sh", `read -r a; echo "got $a in $PWD as $RESQUE_CLASS"; echo '{"result":[1,2]}' >&3`)
	handler(t, dir, "Three", `echo boom >&2; exit 3`)
	handler(t, dir, "Amb.sh", `exit 0`)
	handler(t, dir, "Amb.py", `exit 0`)
	os.WriteFile(filepath.Join(dir, "NoExec"), []byte("#!/bin/sh\n"), 0o644)
	os.Symlink("/nonexistent/target", filepath.Join(dir, "Broken"))
	os.Mkdir(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "config"), nil, 0o644)

	out, stderr, code := cli(t, srv, "try", "--handlers", dir, "Ok", "x", "42")
	if code != 0 || !strings.Contains(out, `got ["x",42] in `+dir+` as Ok`) || !strings.Contains(out, "result: [1,2]") || !strings.Contains(stderr, "ok: Ok in ") {
		t.Errorf("try Ok: exit %d\nstdout %q\nstderr %q", code, out, stderr)
	}
	_, stderr, code = cli(t, srv, "try", "--handlers", dir, "Three")
	if code != 3 || !strings.Contains(stderr, "boom") || !strings.Contains(stderr, "handler Three exited with status 3") {
		t.Errorf("try Three: exit %d, stderr %q", code, stderr)
	}
	if _, _, code = cli(t, srv, "try", "--handlers", dir, "Missing"); code != 127 {
		t.Errorf("try Missing: exit %d, want 127", code)
	}
	if _, _, code = cli(t, srv, "try", "--handlers", dir, "../x"); code != 2 {
		t.Errorf("try ../x: exit %d, want 2", code)
	}

	out, _, code = cli(t, srv, "handlers", "--handlers", dir, "--json")
	var entries []struct{ Class, Path, Problem string }
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("handlers --json: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Path] = e.Class + "|" + e.Problem
	}
	for path, want := range map[string]string{
		"Ok.sh":  "Ok|",
		"Three":  "Three|",
		"Amb.sh": "Amb|ambiguous handler",
		"NoExec": "NoExec|handler not executable",
		"Broken": "Broken|handler not executable",
	} {
		class, problem, _ := strings.Cut(want, "|")
		g := got[path]
		if !strings.HasPrefix(g, class+"|"+problem) {
			t.Errorf("%s: got %q, want class %q problem starting %q", path, g, class, problem)
		}
	}
	if _, ok := got[".git/config"]; ok {
		t.Error("dot entries must not be listed")
	}
	if code != 1 {
		t.Errorf("handlers with problems: exit %d, want 1", code)
	}
}

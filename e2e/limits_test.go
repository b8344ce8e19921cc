package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/internal/testskip"
)

// python returns a "#!" line for python3's own interpreter (not a
// version manager's shell shim, whose processes would count against
// --max-procs), or "" where there is none.
func python(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		return ""
	}
	return "#!" + strings.TrimSpace(string(out)) + "\n"
}

// memoryHog is the body of a python handler that maps and touches 64 MiB of shared memory
// (which RLIMIT_DATA does not count: only the watcher sees it) and then
// waits.
const memoryHog = `import mmap, time
m = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_SHARED)
for i in range(0, len(m), 4096):
    m[i] = 1
time.sleep(60)
`

// TestLimits: the real daemon with a handlers config giving one class a
// memory limit and another an output limit, and --cpu-limit and
// --max-procs for all: each limit's job fails under its own exception
// and message, and the daemon goes on serving.
func TestLimits(t *testing.T) {
	t.Parallel()
	py := python(t)
	if py == "" {
		testskip.Skipf(t, "python3 not usable: the memory handler is a python script")
	}
	srv := redistest.Start(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Hog"), []byte(py+memoryHog), 0o755); err != nil {
		t.Fatal(err)
	}
	handler(t, dir, "Flood", `exec yes flood`)
	handler(t, dir, "Spin", `while :; do :; done`)
	handler(t, dir, "Forker", `for i in 1 2 3 4 5 6; do sleep 60 & done; wait`)
	ran := filepath.Join(t.TempDir(), "ran")
	handler(t, dir, "Ok", `echo "$GREETING" > `+ran)
	conf := filepath.Join(t.TempDir(), "handlers.yml")
	if err := os.WriteFile(conf, []byte(`classes:
  Hog:
    memory: 32M
  Flood:
    max_output: 64k
  Ok:
    env:
      GREETING: hello
  NotDeployed:
    cpu: 5s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, srv, dir, "--queues", "q", "--handlers-config", conf, "--cpu-limit", "1s", "--max-procs", "4")
	for _, class := range []string{"Hog", "Flood", "Spin", "Forker"} {
		push(t, srv, "q", `{"class":"`+class+`","args":[]}`)
	}
	waitProcessed(t, srv, 4)
	got := map[string]string{}
	for _, f := range failures(t, srv) {
		var p struct{ Class string }
		_ = json.Unmarshal(f.Payload, &p)
		got[p.Class] = f.Exception + ": " + f.Error
	}
	for class, want := range map[string]string{
		"Hog":    "Resqued::MemoryLimit: handler Hog was killed: memory limit 32 MiB (peak ",
		"Flood":  "Resqued::OutputLimit: handler Flood was killed: output limit 64 KiB (wrote more than 64 KiB to stdout and stderr)",
		"Spin":   "Resqued::CPULimit: handler Spin was killed: CPU time limit 1s (used ",
		"Forker": "Resqued::ProcessLimit: handler Forker was killed: process limit 4 (",
	} {
		if !strings.HasPrefix(got[class], want) {
			t.Errorf("%s failed with %q, want %q...", class, got[class], want)
		}
	}

	// Still serving: a normal job succeeds, with its class's env.
	push(t, srv, "q", `{"class":"Ok","args":[]}`)
	redistest.Eventually(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(ran)
		return strings.TrimSpace(string(b)) == "hello"
	}, "the Ok job never ran with GREETING=hello")
	if n := len(failures(t, srv)); n != 4 {
		t.Errorf("%d failures, want the 4 limit kills only", n)
	}
	// A class configured with no handler is a warning, not an error.
	if out := d.out.String(); !strings.Contains(out, "handlers config names a class with no handler") || !strings.Contains(out, "NotDeployed") {
		t.Errorf("no warning for the class with no handler:\n%s", out)
	}
}

// TestLimits_Try: resqued try applies the same limits and reports the
// failure the daemon would record.
func TestLimits_Try(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Flood", `exec yes flood`)
	_, stderr, code := cli(t, srv, "try", "--handlers", dir, "--max-output", "64k", "Flood")
	if code != 128+9 || !strings.Contains(stderr, "failed: Resqued::OutputLimit: handler Flood was killed: output limit 64 KiB") {
		t.Errorf("try Flood: exit %d, stderr %.2000q", code, stderr)
	}
	if py := python(t); py == "" {
		t.Log("python3 not usable: try --memory-limit not checked")
	} else {
		if err := os.WriteFile(filepath.Join(dir, "Hog"), []byte(py+memoryHog), 0o755); err != nil {
			t.Fatal(err)
		}
		_, stderr, code = cli(t, srv, "try", "--handlers", dir, "--memory-limit", "32M", "Hog")
		if code != 128+9 || !strings.Contains(stderr, "failed: Resqued::MemoryLimit: handler Hog was killed: memory limit 32 MiB (peak ") {
			t.Errorf("try Hog: exit %d, stderr %q", code, stderr)
		}
	}
	// Bad limits stop try, and the daemon, at start with exit 2.
	conf := filepath.Join(t.TempDir(), "handlers.yml")
	if err := os.WriteFile(conf, []byte("classes:\n  Flood:\n    procs: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"try", "--handlers", dir, "--memory-limit", "5X", "Flood"}, `try: --memory-limit "5X": want a size such as 512M or 2G`},
		{[]string{"--handlers", dir, "--queues", "q", "--cpu-limit", "-2s"}, `--cpu-limit "-2s": must not be negative`},
		{[]string{"--handlers", dir, "--queues", "q", "--handlers-config", conf}, `handlers config handlers.yml line 3: class Flood: procs "-1": must not be negative`},
	} {
		_, stderr, code := cli(t, srv, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("resqued %q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestLimits_ManySmallJobs: every job under a memory limit starts through
// the rlimit shim, the resqued binary itself, which already maps more
// than a small RLIMIT_DATA allows. None of 200 quick jobs may die in the
// shim ("fatal error: runtime: out of memory", as about one in twelve
// did before the fix, and nearly all with GOGC=1): each runs, counted by
// the handler, and none fails.
func TestLimits_ManySmallJobs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	runs := filepath.Join(t.TempDir(), "runs")
	handler(t, dir, "Quick", `echo x >> `+runs)
	// GOGC=1, which the shim inherits, makes a shim that allocates
	// after setting the limit die nearly every time.
	conf := filepath.Join(t.TempDir(), "handlers.yml")
	if err := os.WriteFile(conf, []byte("classes:\n  Quick:\n    env:\n      GOGC: \"1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, srv, dir, "--queues", "q", "--memory-limit", "16M", "--handlers-config", conf)
	const n = 200
	for i := 0; i < n; i++ {
		push(t, srv, "q", `{"class":"Quick","args":[]}`)
	}
	waitProcessed(t, srv, n)
	if fs := failures(t, srv); len(fs) > 0 {
		t.Fatalf("%d of %d jobs failed; the first: %s: %s\n%s", len(fs), n, fs[0].Exception, fs[0].Error, strings.Join(fs[0].Backtrace, "\n"))
	}
	b, _ := os.ReadFile(runs)
	if got := strings.Count(string(b), "x\n"); got != n {
		t.Errorf("the handler ran %d times, want %d", got, n)
	}
}

// Package handlers_test runs the example handlers in ../handlers through
// pkg/runner, the way the daemon runs them, and checks their outcomes and
// output.
package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/testskip"
	"github.com/resqued/resqued/pkg/runner"
)

// syncBuffer is an io.Writer that may be written by the runner's output
// goroutines while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// repoRoot returns the module root, the parent of this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found: %v", err)
	}
	return root
}

// handlersDir returns the repository's example handlers directory.
func handlersDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "handlers")
}

// newRunner returns a runner for dir whose handler output is logged to the
// returned buffer at Info and above. A generous Timeout keeps a misbehaving
// handler from hanging the test run.
func newRunner(t *testing.T, dir string) (*runner.Runner, *syncBuffer) {
	t.Helper()
	return newRunnerAt(t, dir, hclog.Info, 2*time.Second)
}

// newRunnerAt is newRunner with a log level and grace period.
func newRunnerAt(t *testing.T, dir string, level hclog.Level, term time.Duration) (*runner.Runner, *syncBuffer) {
	t.Helper()
	var buf syncBuffer
	r, err := runner.New(runner.Config{
		Dir:         dir,
		Logger:      hclog.New(&hclog.LoggerOptions{Output: &buf, Level: level}),
		TermTimeout: term,
		Timeout:     30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("handler log:\n%s", buf.String())
		}
	})
	return r, &buf
}

// run runs class with args (JSON) and job id "abc" in the examples
// directory.
func run(t *testing.T, class, args string) (*runner.Result, error, string) {
	t.Helper()
	r, buf := newRunner(t, handlersDir(t))
	res, err := r.Run(context.Background(), runner.Job{
		Class:  class,
		Queue:  "default",
		ID:     "abc",
		Worker: "test:1:default",
		Args:   []byte(args),
	})
	return res, err, buf.String()
}

// exitError returns err as an *ExitError, failing the test otherwise.
func exitError(t *testing.T, err error) *runner.ExitError {
	t.Helper()
	var ee *runner.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v (%T), want *runner.ExitError", err, err)
	}
	return ee
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("%s does not contain %q:\n%s", what, want, got)
		}
	}
}

// TestTopLevelEntries checks that every file at the top of handlers/ is an
// executable script with a shebang (each one is a job class), and that each
// example class resolves to the intended file.
func TestTopLevelEntries(t *testing.T) {
	dir := handlersDir(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || name == "Checksum" || name == "Primes" || name == "Double.persistent" {
			continue // directories, .gitignore, .src, the built Go handlers
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s: mode %s, want an executable regular file", name, fi.Mode())
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("#!")) {
			t.Errorf("%s: no #! line", name)
		}
	}

	r, _ := newRunner(t, dir)
	for class, file := range map[string]string{
		"Echo":             "Echo.sh",
		"WordCount":        "WordCount.py",
		"Fail":             "Fail.sh",
		"Sleep":            "Sleep.sh",
		"Mailers::Welcome": filepath.Join("Mailers", "Welcome.sh"),
		"Slugify":          "Slugify.sh",
		"Stats":            "Stats.py",
		"Wordfreq":         "Wordfreq.js",
		"Roman":            "Roman.rb",
		"Invoice":          "Invoice.php",
	} {
		got, err := r.Resolve(class)
		if want := filepath.Join(r.Dir(), file); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", class, got, err, want)
		}
	}
	// Directories are not handlers, and .src (the Go sources) is no class.
	if _, err := r.Resolve("Mailers"); !errors.Is(err, runner.ErrNotExecutable) {
		t.Errorf("Resolve(Mailers) error = %v, want ErrNotExecutable", err)
	}
	if _, err := r.Resolve(".src"); !errors.Is(err, runner.ErrInvalidClass) {
		t.Errorf("Resolve(.src) error = %v, want ErrInvalidClass", err)
	}
	// What `resqued handlers` checks before a deploy: nothing here is wrong.
	inv, err := r.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range inv {
		if e.Problem != "" {
			t.Errorf("handlers/%s: %s", e.Path, e.Problem)
		}
	}
}

func TestEcho(t *testing.T) {
	_, err, log := run(t, "Echo", `["hello", 42]`)
	if err != nil {
		t.Fatalf("Echo failed: %v", err)
	}
	wantContains(t, "log", log, `Echo job abc from queue default: ["hello", 42]`, "stream=stdout")
}

func TestEchoNoArgs(t *testing.T) {
	_, err, log := run(t, "Echo", "")
	if err != nil {
		t.Fatalf("Echo failed: %v", err)
	}
	wantContains(t, "log", log, "Echo job abc from queue default: []")
}

func TestFail(t *testing.T) {
	for _, tc := range []struct {
		args string
		code int
	}{
		{`[3]`, 3},
		{`["42"]`, 42},
		{`[]`, 1},
		{`["not a number"]`, 1},
	} {
		t.Run(tc.args, func(t *testing.T) {
			res, err, _ := run(t, "Fail", tc.args)
			ee := exitError(t, err)
			if ee.Code != tc.code || ee.Signal != 0 || ee.TimedOut || ee.Stopped {
				t.Errorf("ExitError = %+v, want code %d", ee, tc.code)
			}
			want := "handler Fail exited with status " + strconv.Itoa(tc.code)
			if ee.Error() != want {
				t.Errorf("Error() = %q, want %q", ee.Error(), want)
			}
			tail := strings.Join(ee.StderrTail, "\n")
			wantContains(t, "stderr tail", tail,
				"Fail: simulating a failure of job abc",
				"Fail: exiting with status "+strconv.Itoa(tc.code))
			if res == nil || len(res.StderrTail) != len(ee.StderrTail) {
				t.Errorf("Result.StderrTail = %v, want the ExitError's", res)
			}
		})
	}
	t.Run("[0]", func(t *testing.T) {
		if _, err, _ := run(t, "Fail", `[0]`); err != nil {
			t.Errorf("Fail [0]: %v, want success", err)
		}
	})
}

func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		testskip.Skipf(t, "python3 not found in PATH; skipping the WordCount.py example")
	}
}

func TestWordCount(t *testing.T) {
	needPython(t)
	_, err, log := run(t, "WordCount", `["some text here", "two\twords", ""]`)
	if err != nil {
		t.Fatalf("WordCount failed: %v", err)
	}
	wantContains(t, "log", log, `{"counts": [3, 2, 0], "total": 5}`)
}

func TestWordCountBadArgs(t *testing.T) {
	needPython(t)
	for _, args := range []string{`[1, 2]`, `["ok", {"a": 1}]`} {
		t.Run(args, func(t *testing.T) {
			_, err, log := run(t, "WordCount", args)
			ee := exitError(t, err)
			if ee.Code != 1 {
				t.Errorf("exit code = %d, want 1", ee.Code)
			}
			wantContains(t, "stderr tail", strings.Join(ee.StderrTail, "\n"),
				"WordCount: args must be a list of strings")
			wantContains(t, "log", log, "stream=stderr")
		})
	}
}

func TestMailersWelcome(t *testing.T) {
	_, err, log := run(t, "Mailers::Welcome", `[{"email": "ann@example.com"}]`)
	if err != nil {
		t.Fatalf("Mailers::Welcome failed: %v", err)
	}
	// The JSON line with "level" is logged as a structured entry: msg as
	// the message, the other fields as key=value.
	wantContains(t, "log", log, "[INFO]", "welcome mail sent:", "to=ann@example.com")
	if strings.Contains(log, `"level"`) {
		t.Errorf("JSON log line logged raw, want it parsed:\n%s", log)
	}
}

func TestMailersWelcomeBadArgs(t *testing.T) {
	_, err, _ := run(t, "Mailers::Welcome", `[{"name": "Ann"}]`)
	ee := exitError(t, err)
	if ee.Code != 1 {
		t.Errorf("exit code = %d, want 1", ee.Code)
	}
	wantContains(t, "stderr tail", strings.Join(ee.StderrTail, "\n"), "Mailers::Welcome: args must be")
}

func TestSleepShort(t *testing.T) {
	_, err, log := run(t, "Sleep", `[0]`)
	if err != nil {
		t.Fatalf("Sleep [0] failed: %v", err)
	}
	wantContains(t, "log", log, "Sleep: sleeping 0s", "Sleep: done")
}

// TestSleepStop stops a long Sleep the way worker shutdown, USR1 and
// --timeout do, and checks it ends promptly on SIGTERM, well before the
// SIGKILL that would follow the 2s grace period.
func TestSleepStop(t *testing.T) {
	r, buf := newRunner(t, handlersDir(t))
	p, err := r.Start(context.Background(), runner.Job{Class: "Sleep", ID: "abc", Args: []byte(`[30]`)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()

	// Wait until the script has installed its TERM trap and started
	// sleeping: it logs "sleeping" right after.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "Sleep: sleeping 30s") {
		if time.Now().After(deadline) {
			t.Fatalf("Sleep did not start; log:\n%s", buf.String())
		}
		if err := syscall.Kill(p.Pid(), 0); err != nil {
			t.Fatalf("Sleep is not running: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}

	stopped := time.Now()
	p.Stop()
	_, err = p.Wait()
	elapsed := time.Since(stopped)

	ee := exitError(t, err)
	if !(ee.Code == 143 || ee.Signal == syscall.SIGTERM) {
		t.Errorf("ExitError = %+v (%v), want exit status 143 or SIGTERM", ee, ee)
	}
	if !ee.Stopped || ee.TimedOut {
		t.Errorf("Stopped = %v, TimedOut = %v; want true, false", ee.Stopped, ee.TimedOut)
	}
	if elapsed >= 2*time.Second {
		t.Errorf("Sleep took %s to stop, want well under the 2s grace period", elapsed)
	}
	if ee.Code == 143 {
		wantContains(t, "stderr tail", strings.Join(ee.StderrTail, "\n"), "Sleep: got SIGTERM")
	}
}

// buildChecksum builds the Go example into a fresh handlers directory.
func buildChecksum(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		testskip.Skipf(t, "go command not found; skipping the Go handler example")
	}
	dir := t.TempDir()
	cmd := exec.Command(gobin, "build", "-o", filepath.Join(dir, "Checksum"), "./handlers/.src/checksum")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./handlers/.src/checksum: %v\n%s", err, out)
	}
	return dir
}

func TestChecksum(t *testing.T) {
	dir := buildChecksum(t)
	r, buf := newRunner(t, dir)

	_, err := r.Run(context.Background(), runner.Job{Class: "Checksum", ID: "abc", Args: []byte(`["hello", ""]`)})
	if err != nil {
		t.Fatalf("Checksum failed: %v", err)
	}
	wantContains(t, "log", buf.String(), `{"sha256":[`+
		`"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",`+
		`"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}`)

	_, err = r.Run(context.Background(), runner.Job{Class: "Checksum", ID: "abc", Args: []byte(`[1]`)})
	ee := exitError(t, err)
	if ee.Code != 1 {
		t.Errorf("exit code = %d, want 1", ee.Code)
	}
	wantContains(t, "stderr tail", strings.Join(ee.StderrTail, "\n"), "Checksum: args must be a JSON array of strings")
}

// TestEnvironment checks the environment and working directory that
// docs/handlers.md promises, with a throwaway handler.
func TestEnvironment(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\nenv | grep -E '^(RESQUE_|RESQUED_|PWD=)' | sort\npwd\n"
	if err := os.WriteFile(filepath.Join(dir, "Env.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r, buf := newRunner(t, dir)
	if _, err := r.Run(context.Background(), runner.Job{Class: "Env", Queue: "q1", ID: "abc", Worker: "host:1:q1"}); err != nil {
		t.Fatal(err)
	}
	wantContains(t, "log", buf.String(),
		"RESQUE_CLASS=Env:", "RESQUE_QUEUE=q1:", "RESQUE_JOB_ID=abc:", "RESQUE_WORKER=host:1:q1:",
		"RESQUED_PROTOCOL=1:", "RESQUED_HANDLERS_DIR="+r.Dir()+":", "[INFO]  "+r.Dir()+":")
}

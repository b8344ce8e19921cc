package handlers_test

// The persistent examples (Sum.persistent.py, Upcase.persistent.js,
// Reverse.persistent.rb, Length.persistent.php and the Go
// Double.persistent) are run here through one runner.Slot, as one worker
// of the daemon runs them: one process serves job after job, a reported
// failure fails that job only, and EOF on stdin ends the process.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/testskip"
	"github.com/resqued/resqued/pkg/runner"
)

type persistentExample struct {
	name, interp, class string
	file                string // in the handlers directory
	goSrc               string // built from handlers/.src/<goSrc> into a temp dir

	jobs [2]struct{ args, want string } // two jobs in a row, and their results

	badArgs       string
	wantException string
	wantError     string // substring of the failure's error
	wantBacktrace string // substring of a backtrace line; "" for none
}

var persistentExamples = []persistentExample{
	{
		name: "python", interp: "python3", class: "Sum", file: "Sum.persistent.py",
		jobs: [2]struct{ args, want string }{
			{`[[1,2,3]]`, `{"sum":6}`},
			{`[[0.5,-2,10]]`, `{"sum":8.5}`},
		},
		badArgs: `[[1,"x"]]`, wantException: "ValueError", wantError: "args must be [[number, ...]]",
		wantBacktrace: "Sum.persistent.py:",
	},
	{
		name: "node", interp: "node", class: "Upcase", file: "Upcase.persistent.js",
		jobs: [2]struct{ args, want string }{
			{`["abc"]`, `{"text":"ABC"}`},
			{`["Grüße, world"]`, `{"text":"GRÜSSE, WORLD"}`},
		},
		badArgs: `[42]`, wantException: "TypeError", wantError: `args must be ["some text"], got [42]`,
		wantBacktrace: "at upcase (",
	},
	{
		name: "ruby", interp: "ruby", class: "Reverse", file: "Reverse.persistent.rb",
		jobs: [2]struct{ args, want string }{
			{`["abc"]`, `{"text":"cba"}`},
			{`["héllo"]`, `{"text":"olléh"}`},
		},
		badArgs: `[42]`, wantException: "ArgumentError", wantError: `args must be ["some text"], got 42`,
		wantBacktrace: "Reverse.persistent.rb:",
	},
	{
		name: "php", interp: "php", class: "Length", file: "Length.persistent.php",
		jobs: [2]struct{ args, want string }{
			{`["abc"]`, `{"length":3}`},
			{`["héllo"]`, `{"length":5}`},
		},
		badArgs: `[1,2]`, wantException: "InvalidArgumentException", wantError: `args must be ["some text"]`,
		wantBacktrace: "length()",
	},
	{
		name: "go", class: "Double", file: "Double.persistent", goSrc: "double",
		jobs: [2]struct{ args, want string }{
			{`[21]`, `{"double":42}`},
			{`[1.25]`, `{"double":2.5}`},
		},
		badArgs: `["x"]`, wantException: "ArgumentError", wantError: "args must be [number]",
	},
}

// dir returns the handlers directory holding the example: the repository's,
// or for the Go one a temp dir it was built into.
func (e persistentExample) dir(t *testing.T) string {
	t.Helper()
	if e.goSrc == "" {
		needInterpreter(t, e.interp, e.file)
		return handlersDir(t)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		testskip.Skipf(t, "go command not found; skipping the %s example", e.file)
	}
	dir := t.TempDir()
	cmd := exec.Command(gobin, "build", "-o", filepath.Join(dir, e.file), "./handlers/.src/"+e.goSrc)
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./handlers/.src/%s: %v\n%s", e.goSrc, err, out)
	}
	return dir
}

// debugRunner is newRunner logging at debug level, so that the log shows
// how each handler process ended.
func debugRunner(t *testing.T, dir string) (*runner.Runner, *syncBuffer) {
	t.Helper()
	return newRunnerAt(t, dir, hclog.Debug, 10*time.Second)
}

// slotJob runs one job through s and waits for it.
func slotJob(t *testing.T, s *runner.Slot, class, id, args string) (int, *runner.Result, error) {
	t.Helper()
	run, err := s.Start(context.Background(), runner.Job{
		Class: class, Queue: "default", ID: id, Worker: "test:1:default", Args: []byte(args),
	})
	if err != nil {
		t.Fatalf("start %s %s: %v", class, args, err)
	}
	res, err := run.Wait()
	return run.Pid(), res, err
}

func jsonEqual(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	return json.Unmarshal(got, &g) == nil && reflect.DeepEqual(g, w)
}

func TestPersistentExamples(t *testing.T) {
	for _, e := range persistentExamples {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := e.dir(t)
			r, buf := debugRunner(t, dir)
			if got, err := r.Resolve(e.class); err != nil || got != filepath.Join(r.Dir(), e.file) || !runner.IsPersistent(got) {
				t.Fatalf("Resolve(%q) = %q, %v; want the persistent %s", e.class, got, err, e.file)
			}
			s := r.NewSlot(runner.SlotConfig{})
			closed := false
			t.Cleanup(func() {
				if !closed {
					s.Close()
				}
			})

			// Two jobs, one process.
			var pid int
			for i, j := range e.jobs {
				p, res, err := slotJob(t, s, e.class, "job"+strconv.Itoa(i), j.args)
				if err != nil {
					t.Fatalf("job %d %s: %v (stderr %q)", i, j.args, err, res.StderrTail)
				}
				if !jsonEqual(t, res.Report.Result, j.want) {
					t.Errorf("job %d %s: result %s, want %s", i, j.args, res.Report.Result, j.want)
				}
				if i == 0 {
					pid = p
				} else if p != pid {
					t.Errorf("job %d ran in pid %d, want the first job's process %d", i, p, pid)
				}
			}
			if pid <= 0 {
				t.Fatalf("pid %d", pid)
			}

			// Bad input fails that job alone, with the handler's own
			// exception, and leaves the process serving.
			p, res, err := slotJob(t, s, e.class, "bad", e.badArgs)
			var ee *runner.ExitError
			if !errors.As(err, &ee) || !ee.Reported {
				t.Fatalf("bad input %s: err = %v, want a reported failure", e.badArgs, err)
			}
			if p != pid {
				t.Errorf("bad input ran in pid %d, want %d", p, pid)
			}
			f := res.Report.Failure
			if f == nil || f.Exception != e.wantException || !strings.Contains(f.Error, e.wantError) {
				t.Fatalf("bad input %s: failure %+v, want %s containing %q", e.badArgs, f, e.wantException, e.wantError)
			}
			if e.wantBacktrace != "" && !strings.Contains(strings.Join(f.Backtrace, "\n"), e.wantBacktrace) {
				t.Errorf("backtrace %q, want a line with %q", f.Backtrace, e.wantBacktrace)
			}
			if res.Report.Result != nil {
				t.Errorf("failed job has result %s, want none", res.Report.Result)
			}
			p, res, err = slotJob(t, s, e.class, "after", e.jobs[0].args)
			if err != nil || p != pid || !jsonEqual(t, res.Report.Result, e.jobs[0].want) {
				t.Errorf("job after the failure: pid %d (want %d), result %s, %v", p, pid, res.Report.Result, err)
			}

			// EOF on stdin: the process exits by itself, with status 0,
			// well before the 10s grace period would have it stopped.
			start := time.Now()
			s.Close()
			closed = true
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Close took %s: the handler did not exit at EOF", d)
			}
			if log := buf.String(); !strings.Contains(log, "handler exited: class="+e.class+" pid="+strconv.Itoa(pid)+" status=0") {
				t.Errorf("no clean exit of pid %d in the log", pid)
			}
		})
	}
}

// TestPersistentExamplesByHand runs each example as its header comment
// says, without resqued: job lines on stdin, no RESQUE_RESULT_FD. The
// "done" lines must then go to stdout, one per job, and the handler must
// exit 0 at EOF.
func TestPersistentExamplesByHand(t *testing.T) {
	for _, e := range persistentExamples {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(e.dir(t), e.file)
			var in bytes.Buffer
			for _, args := range []string{e.jobs[0].args, e.badArgs, e.jobs[1].args} {
				in.WriteString(`{"id":"x","queue":"default","class":"` + e.class + `","args":` + args + "}\n")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, path)
			cmd.Env = cleanEnv()
			cmd.Stdin = &in
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\nstderr:\n%s", path, err, stderr.String())
			}
			var lines []map[string]json.RawMessage
			for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
				var m map[string]json.RawMessage
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("stdout line %q is not a JSON object: %v", l, err)
				}
				lines = append(lines, m)
			}
			if len(lines) != 3 {
				t.Fatalf("%d lines on stdout, want 3:\n%s", len(lines), stdout.String())
			}
			for i, want := range []string{`"ok"`, `"failed"`, `"ok"`} {
				if string(lines[i]["done"]) != want {
					t.Errorf("line %d: done = %s, want %s", i, lines[i]["done"], want)
				}
			}
			if !jsonEqual(t, lines[0]["result"], e.jobs[0].want) || !jsonEqual(t, lines[2]["result"], e.jobs[1].want) {
				t.Errorf("results %s and %s, want %s and %s", lines[0]["result"], lines[2]["result"], e.jobs[0].want, e.jobs[1].want)
			}
			if string(lines[1]["exception"]) != strconv.Quote(e.wantException) {
				t.Errorf("exception %s, want %q", lines[1]["exception"], e.wantException)
			}
			wantContains(t, "stderr", stderr.String(), e.class+": ")
		})
	}
}

// TestPersistentTry: `resqued try` runs a persistent handler as the daemon
// does, one job in a fresh process, and prints the same outcome lines as
// for an exec handler.
func TestPersistentTry(t *testing.T) {
	for _, e := range persistentExamples {
		t.Run(e.name, func(t *testing.T) {
			dir := e.dir(t)
			out := try(t, dir, "--args", e.jobs[0].args, e.class)
			if out.code != 0 {
				t.Errorf("exit status %d, want 0", out.code)
			}
			var want any
			if err := json.Unmarshal([]byte(e.jobs[0].want), &want); err != nil {
				t.Fatal(err)
			}
			if got := out.result(t); !reflect.DeepEqual(got, want) {
				t.Errorf("result = %v, want %s", got, e.jobs[0].want)
			}
			wantContains(t, "stderr", out.stderr, "ok: "+e.class+" in ")

			out = try(t, dir, "--args", e.badArgs, e.class)
			if out.code != 1 {
				t.Errorf("bad input: exit status %d, want 1", out.code)
			}
			wantContains(t, "stderr", out.stderr, "failed: "+e.wantException+": ", e.wantError)
		})
	}
}

// TestPersistentInventory: `resqued handlers` lists each persistent
// example under its class, with no problem (the Go one once built).
func TestPersistentInventory(t *testing.T) {
	r, _ := newRunner(t, handlersDir(t))
	inv, err := r.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, en := range inv {
		got[en.Path] = en.Class
		if en.Problem != "" {
			t.Errorf("handlers/%s: %s", en.Path, en.Problem)
		}
	}
	for _, e := range persistentExamples {
		if e.goSrc != "" {
			if _, err := os.Stat(filepath.Join(r.Dir(), e.file)); err != nil {
				continue // not built (make handlers)
			}
		}
		if got[e.file] != e.class {
			t.Errorf("handlers/%s listed as class %q, want %q", e.file, got[e.file], e.class)
		}
	}
}

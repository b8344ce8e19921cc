package handlers_test

// The one-per-language examples (Slugify.sh, Stats.py, Wordfreq.js,
// Roman.rb, Invoice.php and the Go Primes) are run here through the real
// command line, `resqued try`, as a handler author would run them: each must
// report its result on the result descriptor (fd 3) and, on bad input, a
// failure object (exception, error, backtrace) and exit 1.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/testskip"
)

var (
	// cliDir holds the resqued binary, built at most once per test run by
	// resquedCLI and removed by TestMain.
	cliDir   string
	cliOnce  sync.Once
	cliPath  string
	cliBuild error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "resqued-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cliDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// resquedCLI returns the path of a resqued binary built from this checkout.
func resquedCLI(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	cliOnce.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			cliBuild = err
			return
		}
		path := filepath.Join(cliDir, "resqued")
		cmd := exec.Command(gobin, "build", "-o", path, "github.com/resqued/resqued/cmd/resqued")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			cliBuild = fmt.Errorf("go build ./cmd/resqued: %v\n%s", err, out)
			return
		}
		cliPath = path
	})
	if cliBuild != nil {
		t.Fatal(cliBuild)
	}
	return cliPath
}

// cleanEnv is the test's environment without the variables that would
// change what resqued or a handler does.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESQUE_") && !strings.HasPrefix(kv, "RESQUED_") {
			env = append(env, kv)
		}
	}
	return env
}

type tryOutput struct {
	code           int
	stdout, stderr string
}

// try runs `resqued try --handlers dir ARG...` and returns its exit status
// and output.
func try(t *testing.T, dir string, args ...string) tryOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"try", "--handlers", dir, "--timeout", "30", "--term-timeout", "2"}, args...)
	cmd := exec.CommandContext(ctx, resquedCLI(t), args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("resqued %s: %v", strings.Join(args, " "), err)
	}
	out := tryOutput{code: code, stdout: stdout.String(), stderr: stderr.String()}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("resqued %q: exit status %d\nstdout:\n%s\nstderr:\n%s", args, out.code, out.stdout, out.stderr)
		}
	})
	return out
}

// result returns the JSON after "result: " on the output's stdout, or nil.
func (o tryOutput) result(t *testing.T) any {
	t.Helper()
	for _, line := range strings.Split(o.stdout, "\n") {
		if raw, ok := strings.CutPrefix(line, "result: "); ok {
			var v any
			if err := json.Unmarshal([]byte(raw), &v); err != nil {
				t.Fatalf("result is not JSON: %v: %s", err, raw)
			}
			return v
		}
	}
	return nil
}

func needInterpreter(t *testing.T, interp, file string) {
	t.Helper()
	if interp == "" {
		return
	}
	if _, err := exec.LookPath(interp); err != nil {
		testskip.Skipf(t, "%s not found in PATH; skipping the %s example", interp, file)
	}
}

// buildPrimes builds the Go example into a fresh handlers directory and
// returns that directory.
func buildPrimes(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		testskip.Skipf(t, "go command not found; skipping the Go Primes example")
	}
	dir := t.TempDir()
	cmd := exec.Command(gobin, "build", "-o", filepath.Join(dir, "Primes"), "./handlers/.src/primes")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./handlers/.src/primes: %v\n%s", err, out)
	}
	return dir
}

type language struct {
	name, interp, class string
	file                string // in the handlers directory
	goBuilt             bool   // built from handlers/.src/primes into a temp dir

	args       []string // resqued try CLASS ARG...
	wantResult string   // JSON, compared as a value
	wantStderr []string // also in try's stderr (progress, ...)

	badArgs       []string
	wantException string
	wantError     string // substring of the failure's error
	wantBacktrace string // substring of a backtrace line; "" for none
}

var languages = []language{
	{
		name: "sh", file: "Slugify.sh", class: "Slugify",
		args: []string{"Hello, World!"}, wantResult: `{"slug":"hello-world"}`,
		badArgs: []string{"42"}, wantException: "ArgumentError", wantError: `args must be ["some title"], got [42]`,
	},
	{
		name: "python", interp: "python3", file: "Stats.py", class: "Stats",
		args: []string{"[1,2,3,4]"}, wantResult: `{"count":4,"mean":2.5,"min":1,"max":4}`,
		wantStderr: []string{"progress: 0% 0 of 4"},
		badArgs:    []string{`[1,"a"]`}, wantException: "ValueError", wantError: "item 1 is 'a', not a number",
		wantBacktrace: "Stats.py:",
	},
	{
		name: "node", interp: "node", file: "Wordfreq.js", class: "Wordfreq",
		args: []string{"the cat the hat"}, wantResult: `{"top":[["the",2],["cat",1],["hat",1]]}`,
		badArgs: []string{"5"}, wantException: "TypeError", wantError: `args must be ["some text", count?], got [5]`,
		wantBacktrace: "at topWords (",
	},
	{
		name: "ruby", interp: "ruby", file: "Roman.rb", class: "Roman",
		args: []string{"1994"}, wantResult: `{"roman":"MCMXCIV"}`,
		badArgs: []string{"0"}, wantException: "ArgumentError", wantError: "got 0",
		wantBacktrace: "Roman.rb:22:in `perform'",
	},
	{
		name: "php", interp: "php", file: "Invoice.php", class: "Invoice",
		args:       []string{`{"items":[{"price":2.5,"qty":2}],"tax":0.2}`},
		wantResult: `{"subtotal":5,"tax":1,"total":6}`,
		badArgs:    []string{`{"items":[{"price":"x","qty":1}]}`}, wantException: "InvalidArgumentException",
		wantError: "item 0 needs a numeric price", wantBacktrace: "Invoice->perform()",
	},
	{
		name: "go", file: "Primes", class: "Primes", goBuilt: true,
		args: []string{"30"}, wantResult: `{"primes":[2,3,5,7,11,13,17,19,23,29]}`,
		badArgs: []string{"x"}, wantException: "ArgumentError", wantError: "args must be [N]",
	},
}

func (l language) dir(t *testing.T) string {
	t.Helper()
	if l.goBuilt {
		return buildPrimes(t)
	}
	return handlersDir(t)
}

func TestLanguages(t *testing.T) {
	for _, l := range languages {
		t.Run(l.name, func(t *testing.T) {
			needInterpreter(t, l.interp, l.file)
			dir := l.dir(t)

			t.Run("ok", func(t *testing.T) {
				out := try(t, dir, append([]string{l.class}, l.args...)...)
				if out.code != 0 {
					t.Errorf("exit status %d, want 0", out.code)
				}
				var want any
				if err := json.Unmarshal([]byte(l.wantResult), &want); err != nil {
					t.Fatal(err)
				}
				if got := out.result(t); !reflect.DeepEqual(got, want) {
					t.Errorf("result = %v, want %s", got, l.wantResult)
				}
				wantContains(t, "stderr", out.stderr, append([]string{"ok: " + l.class + " in "}, l.wantStderr...)...)
			})

			t.Run("bad input", func(t *testing.T) {
				out := try(t, dir, append([]string{l.class}, l.badArgs...)...)
				if out.code != 1 {
					t.Errorf("exit status %d, want 1", out.code)
				}
				if got := out.result(t); got != nil {
					t.Errorf("result %v on failure, want none", got)
				}
				// Exactly what the failure record would say: the
				// handler's own exception and error from fd 3.
				wantContains(t, "stderr", out.stderr,
					"failed: "+l.wantException+": ", l.wantError)
				// The handler's own explanation on stderr is streamed too.
				wantContains(t, "stderr", out.stderr, l.class+": ")
				if l.wantBacktrace != "" {
					wantContains(t, "stderr", out.stderr, "  | ", l.wantBacktrace)
				}
			})
		})
	}
}

// TestLanguagesByHand runs each example directly, as docs and comments
// suggest, without resqued: no RESQUE_RESULT_FD and no fd 3. The report
// lines must then go to stdout.
func TestLanguagesByHand(t *testing.T) {
	for _, l := range languages {
		t.Run(l.name, func(t *testing.T) {
			needInterpreter(t, l.interp, l.file)
			path := filepath.Join(l.dir(t), l.file)
			run := func(args []string) (int, string) {
				raw, err := json.Marshal(jsonArgs(t, args))
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(path)
				cmd.Env = cleanEnv()
				cmd.Stdin = bytes.NewReader(raw)
				var stdout bytes.Buffer
				cmd.Stdout = &stdout
				err = cmd.Run()
				var ee *exec.ExitError
				if err != nil && !errors.As(err, &ee) {
					t.Fatalf("%s: %v", path, err)
				}
				return cmd.ProcessState.ExitCode(), stdout.String()
			}

			code, stdout := run(l.args)
			if code != 0 {
				t.Errorf("exit status %d, want 0; stdout:\n%s", code, stdout)
			}
			wantContains(t, "stdout", stdout, `"result"`)

			code, stdout = run(l.badArgs)
			if code != 1 {
				t.Errorf("bad input: exit status %d, want 1; stdout:\n%s", code, stdout)
			}
			wantContains(t, "stdout", stdout, `"exception"`, l.wantException)
		})
	}
}

// jsonArgs turns command-line ARGs into the args array as `resqued try`
// does: JSON when an ARG parses as JSON, a string otherwise.
func jsonArgs(t *testing.T, args []string) []json.RawMessage {
	t.Helper()
	list := make([]json.RawMessage, 0, len(args))
	for _, a := range args {
		if json.Valid([]byte(a)) {
			list = append(list, json.RawMessage(a))
			continue
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, b)
	}
	return list
}

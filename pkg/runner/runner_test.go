package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/testproc"
)

func TestRunner_Run(t *testing.T) {
	t.Parallel()

	t.Run("stdin delivered verbatim", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		writeHandler(t, r.Dir(), "Cat", helper{mode: "cat"})
		for _, args := range []string{`[1,"two",{"three":3}]`, "", "  [ \"spaces\\n\" ]  "} {
			logger, sink := newTestLogger()
			res, err := r.Run(context.Background(), Job{Class: "Cat", Queue: "q", Args: []byte(args), Logger: logger})
			if err != nil {
				t.Fatalf("Run(args %q): %v", args, err)
			}
			want := args
			if want == "" {
				want = "[]"
			}
			if diff := cmp.Diff([]string{want}, sink.lines(t, "stdout")); diff != "" {
				t.Errorf("stdout lines (-want +got):\n%s", diff)
			}
			if res == nil || res.Duration <= 0 {
				t.Errorf("Result = %+v, want positive duration", res)
			}
		}
	})

	t.Run("environment", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{Env: []string{
			"FOO=bar",
			"RESQUE_CLASS=bogus",
			"RESQUE_JOB_ID=stale",
			"RESQUED_PROTOCOL=99",
			"PWD=/nowhere",
		}})
		writeHandler(t, r.Dir(), "Env", helper{mode: "env"})
		logger, sink := newTestLogger()
		job := Job{Class: "Env", Queue: "high", Worker: "host:1:high", Logger: logger}
		if _, err := r.Run(context.Background(), job); err != nil {
			t.Fatalf("Run: %v", err)
		}
		got := map[string][]string{}
		for _, kv := range sink.lines(t, "stdout") {
			name, value, _ := strings.Cut(kv, "=")
			got[name] = append(got[name], value)
		}
		for name, want := range map[string]string{
			"FOO":                  "bar",
			"RESQUE_CLASS":         "Env",
			"RESQUE_QUEUE":         "high",
			"RESQUE_JOB_ID":        "",
			"RESQUE_WORKER":        "host:1:high",
			"RESQUED_PROTOCOL":     "1",
			"RESQUED_HANDLERS_DIR": r.Dir(),
			"RESQUE_RESULT_FD":     "3",
			"RESQUE_ATTEMPT":       "1",
			"PWD":                  r.Dir(),
		} {
			if diff := cmp.Diff([]string{want}, got[name]); diff != "" {
				t.Errorf("%s (-want +got):\n%s", name, diff)
			}
		}
	})

	t.Run("job id and default env", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		env := r.environ(Job{Class: "C", ID: "abc"})
		if got, want := env[len(env)-7], "RESQUE_JOB_ID=abc"; got != want {
			t.Errorf("env entry = %q, want %q", got, want)
		}
		if len(env) < 9 {
			t.Errorf("environ() has %d entries, want os.Environ() plus 9", len(env))
		}
	})

	t.Run("working directory", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		writeHandler(t, r.Dir(), "Pwd", helper{mode: "pwd"})
		logger, sink := newTestLogger()
		if _, err := r.Run(context.Background(), Job{Class: "Pwd", Logger: logger}); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if diff := cmp.Diff([]string{r.Dir()}, sink.lines(t, "stdout")); diff != "" {
			t.Errorf("stdout (-want +got):\n%s", diff)
		}
	})

	t.Run("plain shell handler", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		path := writeScript(t, r.Dir(), "Shop/Resize.sh", `#!/bin/sh
echo "argv0=$0 args=$#"
echo "class=$RESQUE_CLASS queue=$RESQUE_QUEUE"
cat
echo
echo "to stderr" >&2
`)
		logger, sink := newTestLogger()
		res, err := r.Run(context.Background(), Job{Class: "Shop::Resize", Queue: "img", Args: []byte(`["a.png",2]`), Logger: logger})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		want := []string{"argv0=" + path + " args=0", "class=Shop::Resize queue=img", `["a.png",2]`}
		if diff := cmp.Diff(want, sink.lines(t, "stdout")); diff != "" {
			t.Errorf("stdout (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"to stderr"}, sink.lines(t, "stderr")); diff != "" {
			t.Errorf("stderr log (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"to stderr"}, res.StderrTail); diff != "" {
			t.Errorf("StderrTail (-want +got):\n%s", diff)
		}
	})

	t.Run("exit status", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		writeHandler(t, r.Dir(), "Exit3", helper{mode: "exit", arg: "3"})
		res, err := r.Run(context.Background(), Job{Class: "Exit3"})
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("Run error = %v, want *ExitError", err)
		}
		if got, want := ee.Code, 3; got != want {
			t.Errorf("Code = %d, want %d", got, want)
		}
		if ee.Signal != 0 || ee.TimedOut || ee.Stopped {
			t.Errorf("ExitError = %+v, want only Code set", ee)
		}
		if got, want := err.Error(), "handler Exit3 exited with status 3"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
		want := []string{"oops 1", "oops 2", "oops 3", "oops 4", "oops 5"}
		if diff := cmp.Diff(want, ee.StderrTail); diff != "" {
			t.Errorf("ExitError.StderrTail (-want +got):\n%s", diff)
		}
		if res == nil {
			t.Fatal("Result is nil alongside ExitError")
		}
		if diff := cmp.Diff(want, res.StderrTail); diff != "" {
			t.Errorf("Result.StderrTail (-want +got):\n%s", diff)
		}
		if got, want := ee.Duration, res.Duration; got != want {
			t.Errorf("ExitError.Duration = %s, want Result.Duration %s", got, want)
		}
	})

	t.Run("killed by signal", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		writeHandler(t, r.Dir(), "SigSelf", helper{mode: "sigkill-self"})
		_, err := r.Run(context.Background(), Job{Class: "SigSelf"})
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("Run error = %v, want *ExitError", err)
		}
		if got, want := ee.Signal, syscall.SIGKILL; got != want {
			t.Errorf("Signal = %v, want %v", got, want)
		}
		if got, want := ee.Code, -1; got != want {
			t.Errorf("Code = %d, want %d", got, want)
		}
		if ee.Stopped || ee.TimedOut {
			t.Errorf("Stopped = %t, TimedOut = %t; want false", ee.Stopped, ee.TimedOut)
		}
		if got, want := err.Error(), "handler SigSelf killed by signal SIGKILL"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	})

	t.Run("resolve errors", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		for class, want := range map[string]error{"../x": ErrInvalidClass, "Missing": ErrNoHandler} {
			res, err := r.Run(context.Background(), Job{Class: class})
			if !errors.Is(err, want) || res != nil {
				t.Errorf("Run(%q) = %v, %v; want nil, %v", class, res, err, want)
			}
		}
	})

	t.Run("start error", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		path := writeScript(t, r.Dir(), "BadInterp", "#!/nonexistent/interpreter\n")
		p, err := r.Start(context.Background(), Job{Class: "BadInterp"})
		if err == nil {
			p.Kill()
			t.Fatal("Start succeeded, want error")
		}
		if got, want := err.Error(), "start handler "+path+": "; !strings.HasPrefix(got, want) {
			t.Errorf("Start error = %q, want prefix %q", got, want)
		}
		for _, sentinel := range []error{ErrInvalidClass, ErrNoHandler, ErrAmbiguous, ErrNotExecutable} {
			if errors.Is(err, sentinel) {
				t.Errorf("Start error %v matches %v", err, sentinel)
			}
		}
	})

	t.Run("cancelled context does not start", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		writeHandler(t, r.Dir(), "Cat", helper{mode: "cat"})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if p, err := r.Start(ctx, Job{Class: "Cat"}); !errors.Is(err, context.Canceled) {
			t.Errorf("Start = %v, %v; want context.Canceled", p, err)
		}
	})

	t.Run("handler never reads stdin", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{TermTimeout: 10 * time.Second})
		writeHandler(t, r.Dir(), "NoRead", helper{mode: "noread"})
		args := []byte("[\"" + strings.Repeat("z", 10<<20) + "\"]")
		p, err := r.Start(context.Background(), Job{Class: "NoRead", Args: args})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		if _, err := waitWithin(t, p, 5*time.Second); err != nil {
			t.Errorf("Wait: %v", err)
		}
	})

	t.Run("json log lines", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		writeHandler(t, r.Dir(), "Json", helper{mode: "json"})
		logger, sink := newTestLogger()
		if _, err := r.Run(context.Background(), Job{Class: "Json", Logger: logger}); err != nil {
			t.Fatalf("Run: %v", err)
		}
		type entry struct{ Level, Msg, Extra string }
		var got []entry
		for _, e := range sink.entries(t) {
			if e["stream"] != "stdout" {
				continue
			}
			got = append(got, entry{e["@level"].(string), e["@message"].(string), fmt.Sprint(e["free"])})
		}
		want := []entry{
			{"warn", "disk low", "12"},
			{"error", "boom", "<nil>"},
			{"debug", `{"level":"debug"}`, "<nil>"},
			{"info", `{"level":"bogus","msg":"x"}`, "<nil>"},
			{"info", "plain text", "<nil>"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("log entries (-want +got):\n%s", diff)
		}
	})

	t.Run("concurrent runs", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		writeHandler(t, r.Dir(), "Cat", helper{mode: "cat"})
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				logger, sink := newTestLogger()
				args := fmt.Sprintf("[%d]", i)
				if _, err := r.Run(context.Background(), Job{Class: "Cat", Args: []byte(args), Logger: logger}); err != nil {
					t.Errorf("Run %d: %v", i, err)
					return
				}
				if diff := cmp.Diff([]string{args}, sink.lines(t, "stdout")); diff != "" {
					t.Errorf("Run %d stdout (-want +got):\n%s", i, diff)
				}
			}()
		}
		wg.Wait()
	})
}

func TestProcess_Stop(t *testing.T) {
	t.Parallel()

	t.Run("SIGTERM", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{TermTimeout: 10 * time.Second})
		marker := filepath.Join(t.TempDir(), "pid")
		writeHandler(t, r.Dir(), "Sleep", helper{mode: "sleep", file: marker})
		p, err := r.Start(context.Background(), Job{Class: "Sleep"})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		if got, want := waitPidFile(t, marker), p.Pid(); got != want {
			t.Errorf("handler pid = %d, want Pid() %d", got, want)
		}
		p.Stop()
		_, err = waitWithin(t, p, 5*time.Second)
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("Wait error = %v, want *ExitError", err)
		}
		if got, want := ee.Signal, syscall.SIGTERM; got != want {
			t.Errorf("Signal = %v, want %v", got, want)
		}
		if !ee.Stopped || ee.TimedOut {
			t.Errorf("Stopped = %t, TimedOut = %t; want true, false", ee.Stopped, ee.TimedOut)
		}
		if got, want := err.Error(), "handler Sleep killed by signal SIGTERM"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	})

	t.Run("SIGKILL after TermTimeout", func(t *testing.T) {
		t.Parallel()
		const termTimeout = 200 * time.Millisecond
		r := newTestRunner(t, Config{TermTimeout: termTimeout})
		marker := filepath.Join(t.TempDir(), "pid")
		writeHandler(t, r.Dir(), "Stubborn", helper{mode: "ignore-term", file: marker})
		p, err := r.Start(context.Background(), Job{Class: "Stubborn"})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		waitPidFile(t, marker) // SIGTERM is ignored from now on
		stopped := time.Now()
		p.Stop()
		_, err = waitWithin(t, p, 5*time.Second)
		if elapsed := time.Since(stopped); elapsed < termTimeout {
			t.Errorf("handler exited %s after Stop, want at least TermTimeout %s", elapsed, termTimeout)
		}
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("Wait error = %v, want *ExitError", err)
		}
		if got, want := ee.Signal, syscall.SIGKILL; got != want {
			t.Errorf("Signal = %v, want %v", got, want)
		}
		if !ee.Stopped {
			t.Error("Stopped = false, want true")
		}
	})

	t.Run("exit 0 after stop is success", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{TermTimeout: 10 * time.Second})
		marker := filepath.Join(t.TempDir(), "pid")
		writeHandler(t, r.Dir(), "Graceful", helper{mode: "term-exit", arg: "0", file: marker})
		p, err := r.Start(context.Background(), Job{Class: "Graceful"})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		waitPidFile(t, marker)
		p.Stop()
		if res, err := waitWithin(t, p, 5*time.Second); err != nil || res == nil {
			t.Errorf("Wait = %v, %v; want result, nil", res, err)
		}
	})

	t.Run("nonzero exit after stop", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{TermTimeout: 10 * time.Second})
		marker := filepath.Join(t.TempDir(), "pid")
		writeHandler(t, r.Dir(), "Graceful", helper{mode: "term-exit", arg: "143", file: marker})
		p, err := r.Start(context.Background(), Job{Class: "Graceful"})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		waitPidFile(t, marker)
		p.Stop()
		_, err = waitWithin(t, p, 5*time.Second)
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("Wait error = %v, want *ExitError", err)
		}
		if ee.Code != 143 || ee.Signal != 0 || !ee.Stopped {
			t.Errorf("ExitError = %+v, want Code 143, Stopped", ee)
		}
	})

	t.Run("idempotent and concurrent", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		marker := filepath.Join(t.TempDir(), "pid")
		writeHandler(t, r.Dir(), "Stubborn", helper{mode: "ignore-term", file: marker})
		p, err := r.Start(context.Background(), Job{Class: "Stubborn"})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		waitPidFile(t, marker)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.Stop()
				p.Stop()
			}()
		}
		wg.Wait()
		_, err = waitWithin(t, p, 5*time.Second)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL || !ee.Stopped {
			t.Fatalf("Wait error = %#v, want *ExitError with SIGKILL, Stopped", err)
		}
		// After exit, Stop, Kill and Wait are harmless.
		p.Stop()
		p.Kill()
		if _, err2 := p.Wait(); err2 != err {
			t.Errorf("second Wait error = %v, want %v", err2, err)
		}
	})
}

func TestProcess_Kill(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{TermTimeout: 10 * time.Second})
	marker := filepath.Join(t.TempDir(), "pid")
	writeHandler(t, r.Dir(), "Stubborn", helper{mode: "ignore-term", file: marker})
	p, err := r.Start(context.Background(), Job{Class: "Stubborn"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitPidFile(t, marker)
	p.Stop() // SIGTERM is ignored; Kill must not wait for TermTimeout
	p.Kill()
	p.Kill()
	_, err = waitWithin(t, p, 5*time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Wait error = %v, want *ExitError", err)
	}
	if ee.Signal != syscall.SIGKILL || ee.Code != -1 || !ee.Stopped || ee.TimedOut {
		t.Errorf("ExitError = %+v, want SIGKILL, Code -1, Stopped", ee)
	}
	p.Kill()
}

func TestRunner_Run_contextCancel(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{TermTimeout: 10 * time.Second})
	marker := filepath.Join(t.TempDir(), "pid")
	writeHandler(t, r.Dir(), "Sleep", helper{mode: "sleep", file: marker})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := r.Start(ctx, Job{Class: "Sleep"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitPidFile(t, marker)
	cancel()
	_, err = waitWithin(t, p, 5*time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Wait error = %v, want *ExitError", err)
	}
	if ee.Signal != syscall.SIGTERM || !ee.Stopped || ee.TimedOut {
		t.Errorf("ExitError = %+v, want SIGTERM, Stopped", ee)
	}
}

func TestRunner_Run_timeout(t *testing.T) {
	t.Parallel()

	t.Run("SIGTERM", func(t *testing.T) {
		t.Parallel()
		const timeout = 300 * time.Millisecond
		r := newTestRunner(t, Config{Timeout: timeout, TermTimeout: 10 * time.Second})
		writeHandler(t, r.Dir(), "Slow", helper{mode: "sleep"})
		start := time.Now()
		res, err := r.Run(context.Background(), Job{Class: "Slow"})
		if elapsed := time.Since(start); elapsed < timeout {
			t.Errorf("Run returned after %s, before the %s timeout", elapsed, timeout)
		}
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("Run error = %v, want *ExitError", err)
		}
		if !ee.TimedOut || ee.Stopped || ee.Signal != syscall.SIGTERM {
			t.Errorf("ExitError = %+v, want TimedOut with SIGTERM", ee)
		}
		if got, want := err.Error(), "handler Slow timed out after 300ms"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
		if res == nil || res.Duration < timeout {
			t.Errorf("Result = %+v, want Duration >= %s", res, timeout)
		}
	})

	t.Run("SIGKILL", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{Timeout: 100 * time.Millisecond, TermTimeout: 100 * time.Millisecond})
		writeHandler(t, r.Dir(), "Stubborn", helper{mode: "ignore-term"})
		_, err := r.Run(context.Background(), Job{Class: "Stubborn"})
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("Run error = %v, want *ExitError", err)
		}
		// The handler may be killed before it gets to ignore SIGTERM.
		if !ee.TimedOut || ee.Code != -1 || ee.Signal == 0 {
			t.Errorf("ExitError = %+v, want TimedOut, killed by signal", ee)
		}
	})

	t.Run("fast handler", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{Timeout: time.Minute})
		writeHandler(t, r.Dir(), "Cat", helper{mode: "cat"})
		if _, err := r.Run(context.Background(), Job{Class: "Cat"}); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestRunner_Run_grandchild(t *testing.T) {
	t.Parallel()

	t.Run("killed on stop", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{TermTimeout: 10 * time.Second})
		pidFile := filepath.Join(t.TempDir(), "grandchild")
		writeHandler(t, r.Dir(), "Parent", helper{mode: "grandchild", arg: "stay", file: pidFile})
		p, err := r.Start(context.Background(), Job{Class: "Parent"})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		gpid := waitPidFile(t, pidFile)
		p.Stop()
		if _, err := waitWithin(t, p, 5*time.Second); err == nil {
			t.Error("Wait error = nil, want *ExitError")
		}
		waitGone(t, gpid)
	})

	t.Run("killed after leader exits", func(t *testing.T) {
		t.Parallel()
		// A long TermTimeout: Wait must not depend on the drain deadline.
		r := newTestRunner(t, Config{TermTimeout: time.Minute})
		pidFile := filepath.Join(t.TempDir(), "grandchild")
		writeHandler(t, r.Dir(), "Parent", helper{mode: "grandchild", arg: "exit", file: pidFile})
		logger, sink := newTestLogger()
		p, err := r.Start(context.Background(), Job{Class: "Parent", Logger: logger})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		if _, err := waitWithin(t, p, 10*time.Second); err != nil {
			t.Errorf("Wait: %v", err)
		}
		gpid := waitPidFile(t, pidFile)
		waitGone(t, gpid)
		if diff := cmp.Diff([]string{"grandchild started"}, sink.lines(t, "stdout")); diff != "" {
			t.Errorf("stdout (-want +got):\n%s", diff)
		}
	})

	t.Run("escaped grandchild holding pipes", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{TermTimeout: 200 * time.Millisecond})
		pidFile := filepath.Join(t.TempDir(), "grandchild")
		writeHandler(t, r.Dir(), "Parent", helper{mode: "grandchild", arg: "setsid-exit", file: pidFile})
		p, err := r.Start(context.Background(), Job{Class: "Parent"})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		// Named now, while it runs: killed at the end only if it is
		// still the grandchild, not another process with its pid.
		if g, ok := testproc.Find(waitPidFile(t, pidFile)); ok {
			t.Cleanup(func() { g.Kill() })
		}
		if _, err := waitWithin(t, p, 5*time.Second); err != nil {
			t.Errorf("Wait: %v", err)
		}
	})
}

// TestRunner_Run_output runs sequentially (not in parallel with the other
// tests) so that heap measurements are meaningful.
func TestRunner_Run_output(t *testing.T) {
	t.Run("stdout flood", func(t *testing.T) {
		r := newTestRunner(t, Config{})
		writeHandler(t, r.Dir(), "Flood", helper{mode: "flood", arg: "stdout"})
		// Lines are formatted and discarded, not retained.
		logger := hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Info})
		peak := measureHeap(t, func() {
			if _, err := r.Run(context.Background(), Job{Class: "Flood", Logger: logger}); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		if limit := uint64(50 << 20); peak > limit {
			t.Errorf("peak HeapInuse = %d MiB, want below %d MiB", peak>>20, limit>>20)
		}
	})

	t.Run("stderr flood", func(t *testing.T) {
		const tail = 100 << 10
		r := newTestRunner(t, Config{StderrTail: tail})
		writeHandler(t, r.Dir(), "Flood", helper{mode: "flood", arg: "stderr"})
		var res *Result
		peak := measureHeap(t, func() {
			var err error
			if res, err = r.Run(context.Background(), Job{Class: "Flood"}); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		if limit := uint64(50 << 20); peak > limit {
			t.Errorf("peak HeapInuse = %d MiB, want below %d MiB", peak>>20, limit>>20)
		}
		if res == nil {
			t.Fatal("Result is nil")
		}
		// 8 KiB per line including the newline: 12 lines fit in 100 KiB.
		if got, want := len(res.StderrTail), 12; got != want {
			t.Errorf("len(StderrTail) = %d, want %d", got, want)
		}
		if got, want := tailSize(res.StderrTail), tail; got > want {
			t.Errorf("StderrTail size = %d, want at most %d", got, want)
		}
		for i, line := range res.StderrTail {
			if line != strings.Repeat("x", 8<<10-1) {
				t.Errorf("StderrTail[%d] = %.20q... (%d bytes), want 8191 x", i, line, len(line))
			}
		}
	})

	t.Run("single huge line", func(t *testing.T) {
		const maxLine = 4 << 10
		r := newTestRunner(t, Config{MaxLine: maxLine, StderrTail: 10 << 10})
		writeHandler(t, r.Dir(), "Long", helper{mode: "longline"})
		var res *Result
		peak := measureHeap(t, func() {
			var err error
			if res, err = r.Run(context.Background(), Job{Class: "Long"}); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		if limit := uint64(50 << 20); peak > limit {
			t.Errorf("peak HeapInuse = %d MiB, want below %d MiB", peak>>20, limit>>20)
		}
		if res == nil {
			t.Fatal("Result is nil")
		}
		want := []string{strings.Repeat("y", maxLine), strings.Repeat("y", maxLine)}
		if diff := cmp.Diff(want, res.StderrTail); diff != "" {
			t.Errorf("StderrTail (-want +got):\n%.500s", diff)
		}
	})

	t.Run("stderr tail bound", func(t *testing.T) {
		r := newTestRunner(t, Config{StderrTail: 100})
		writeHandler(t, r.Dir(), "Lines", helper{mode: "stderr-lines", arg: "50"})
		res, err := r.Run(context.Background(), Job{Class: "Lines"})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		// "line NN" is 8 bytes with its newline: the last 12 lines fit.
		var want []string
		for i := 39; i <= 50; i++ {
			want = append(want, fmt.Sprintf("line %02d", i))
		}
		if diff := cmp.Diff(want, res.StderrTail); diff != "" {
			t.Errorf("StderrTail (-want +got):\n%s", diff)
		}
	})
}

// measureHeap runs f while sampling the heap and returns the peak HeapInuse.
func measureHeap(t *testing.T, f func()) uint64 {
	t.Helper()
	runtime.GC()
	var (
		mu   sync.Mutex
		peak uint64
	)
	defer func() { t.Logf("peak HeapInuse %.1f MiB", float64(peak)/(1<<20)) }()
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	<-sampled
	mu.Lock()
	defer mu.Unlock()
	return peak
}

func tailSize(lines []string) int {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	return n
}

func TestExitError_Error(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  ExitError
		want string
	}{
		{ExitError{Class: "Resize", Code: 3}, "handler Resize exited with status 3"},
		{ExitError{Class: "Resize", Code: -1, Signal: syscall.SIGKILL}, "handler Resize killed by signal SIGKILL"},
		{ExitError{Class: "Resize", Code: -1, Signal: syscall.SIGTERM, Stopped: true}, "handler Resize killed by signal SIGTERM"},
		{ExitError{Class: "Resize", Code: -1, Signal: syscall.Signal(42)}, "handler Resize killed by signal signal 42"},
		{ExitError{Class: "Resize", Code: -1, Signal: syscall.SIGKILL, TimedOut: true, Timeout: 30 * time.Second}, "handler Resize timed out after 30s"},
		{ExitError{Class: "Resize", Code: 1, TimedOut: true, Duration: 1500 * time.Millisecond}, "handler Resize timed out after 1.5s"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestSplitLines(t *testing.T) {
	t.Parallel()
	type line struct {
		Text  string
		Whole bool
	}
	for _, tc := range []struct {
		in      string
		maxLine int
		want    []line
	}{
		{"", 4, nil},
		{"abc", 4, []line{{"abc", true}}},
		{"abc\n", 4, []line{{"abc", true}}},
		{"abc\r\n\n", 4, []line{{"abc", true}, {"", true}}},
		{"abcd\nef\n", 4, []line{{"abcd", true}, {"ef", true}}},
		{"abcde\n", 4, []line{{"abcd", false}, {"e", false}}},
		{"abcdefgh\nx", 4, []line{{"abcd", false}, {"efgh", false}, {"x", true}}},
		{"abcdefghi", 4, []line{{"abcd", false}, {"efgh", false}, {"i", false}}},
		{strings.Repeat("z", 10000) + "\nok\n", 4096, []line{
			{strings.Repeat("z", 4096), false}, {strings.Repeat("z", 4096), false}, {strings.Repeat("z", 1808), false}, {"ok", true},
		}},
		{strings.Repeat("z", 4096) + "\n", 4096, []line{{strings.Repeat("z", 4096), true}}},
	} {
		var got []line
		err := splitLines(strings.NewReader(tc.in), tc.maxLine, func(b []byte, whole bool) {
			got = append(got, line{string(b), whole})
		})
		if err != nil {
			t.Errorf("splitLines(%.20q): %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("splitLines(%.20q, %d) (-want +got):\n%.400s", tc.in, tc.maxLine, diff)
		}
	}

	t.Run("read error", func(t *testing.T) {
		boom := errors.New("boom")
		var got []string
		err := splitLines(&errReader{data: "a\nb", err: boom}, 8, func(b []byte, _ bool) { got = append(got, string(b)) })
		if !errors.Is(err, boom) {
			t.Errorf("splitLines error = %v, want %v", err, boom)
		}
		if diff := cmp.Diff([]string{"a", "b"}, got); diff != "" {
			t.Errorf("lines (-want +got):\n%s", diff)
		}
	})
}

type errReader struct {
	data string
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		max  int
		in   []string
		want []string
	}{
		{10, nil, nil},
		{10, []string{"ab", "cd"}, []string{"ab", "cd"}},
		{10, []string{"abcd", "efgh", "ij"}, []string{"efgh", "ij"}},
		{10, []string{"abcdefghijklmnopqrstuvwxyz"}, []string{"rstuvwxyz"}},
		{10, []string{"ab", "abcdefghijklmnopqrstuvwxyz"}, []string{"rstuvwxyz"}},
		{10, []string{"", "", "", "", "", "", "", "", "", "", "", ""}, []string{"", "", "", "", "", "", "", "", "", ""}},
		{5, []string{"x", "aé€"}, []string{"€"}},
		{1, []string{"abc"}, []string{""}},
	} {
		tb := newTailBuffer(tc.max)
		for _, l := range tc.in {
			tb.add([]byte(l))
		}
		got := tb.snapshot()
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("tail(%d) of %q (-want +got):\n%s", tc.max, tc.in, diff)
		}
		if size := tailSize(got); size > tc.max {
			t.Errorf("tail(%d) of %q holds %d bytes", tc.max, tc.in, size)
		}
	}
}

func TestParseJSONLine(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{"level":"info"} x`, `{"level":1}`, `{"msg":"no level"}`, `[1]`, `{"level":"info"`, `{} {}`} {
		if _, _, _, ok := parseJSONLine([]byte(in)); ok {
			t.Errorf("parseJSONLine(%q) ok, want not ok", in)
		}
	}
	_, msg, args, ok := parseJSONLine([]byte(` {"level":"warning","msg":"m","message":"other","b":2,"a":"x","stream":"s"} `))
	if !ok {
		t.Fatal("parseJSONLine not ok")
	}
	if got, want := msg, "m"; got != want {
		t.Errorf("msg = %q, want %q", got, want)
	}
	if got, want := fmt.Sprint(args), "[a x b 2 message other]"; got != want {
		t.Errorf("args = %s, want %s", got, want)
	}
}

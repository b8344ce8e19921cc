// Package e2e runs the real resqued binary against a real redis-server with
// real handler executables.
package e2e

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// resqued is the binary under test, built once by TestMain.
var resqued string

func TestMain(m *testing.M) {
	// The tests spend their time waiting on daemons, handlers and lease
	// expiry, not computing: run 8 at once rather than GOMAXPROCS (2 on
	// the CI machine), unless -parallel says otherwise.
	flag.Parse()
	// A TRACEPARENT of the environment the tests run in (a traced CI)
	// would go into every payload resqued enqueue writes.
	os.Unsetenv("TRACEPARENT")
	os.Unsetenv("TRACESTATE")
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == strconv.Itoa(runtime.GOMAXPROCS(0)) {
		_ = f.Value.Set("8")
	}
	os.Exit(redistest.RunWithBinary(m, "github.com/resqued/resqued/cmd/resqued", &resqued))
}

const ns = "resque"

// noRaceExitSleep stops the race-enabled binary from sleeping a second
// before every clean exit (GORACE's atexit_sleep_ms defaults to 1000).
const noRaceExitSleep = "GORACE=atexit_sleep_ms=0"

// syncBuffer collects a process's output safely for -race.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// start runs resqued with debug logging against srv with the given
// handlers dir and extra arguments. The test's cleanup sends QUIT and,
// failing that, KILL.
func start(t *testing.T, srv *redistest.Server, handlers string, args ...string) *daemon {
	t.Helper()
	return startEnv(t, srv, handlers, nil, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, srv *redistest.Server, handlers string, env []string, args ...string) *daemon {
	t.Helper()
	return startArgs(t, srv, handlers, env, append([]string{"-vv"}, args...)...)
}

// startArgs is startEnv without the debug flag.
func startArgs(t *testing.T, srv *redistest.Server, handlers string, env []string, args ...string) *daemon {
	t.Helper()
	return startURL(t, srv.URL(), handlers, env, args...)
}

// startURL is startArgs on any Redis URL (a redis+sentinel one, a
// proxy's).
func startURL(t *testing.T, url, handlers string, env []string, args ...string) *daemon {
	t.Helper()
	all := append([]string{"--redis", url, "--handlers", handlers}, args...)
	cmd := exec.Command(resqued, all...)
	cmd.Env = append(append(os.Environ(), "RESQUE_PROCLINE_PREFIX=e2e ", noRaceExitSleep), env...)
	return launch(t, cmd, "resqued")
}

// launch starts cmd, a daemon, with its output collected, and has the
// test's cleanup send it QUIT and, if it has not exited 20 s later, KILL;
// name labels its output in the log of a failed test.
func launch(t *testing.T, cmd *exec.Cmd, name string) *daemon {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-d.done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-d.done
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return d
}

func (d *daemon) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the daemon to exit and returns its exit error.
func (d *daemon) wait(within time.Duration) error {
	d.t.Helper()
	select {
	case <-d.done:
		return d.err
	case <-time.After(within):
		d.t.Fatalf("resqued did not exit within %s", within)
		return nil
	}
}

// handler writes an executable script into dir.
func handler(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// push RPUSHes a raw payload the way any Resque client does.
func push(t *testing.T, srv *redistest.Server, q, payload string) {
	t.Helper()
	srv.Do(t, "SADD", queue.QueuesKey(ns), q)
	srv.Do(t, "RPUSH", queue.QueueKey(ns, q), payload)
}

func getInt(t *testing.T, srv *redistest.Server, key string) int {
	t.Helper()
	n, _ := redis.Int(srv.Do(t, "GET", key), nil)
	return n
}

func waitProcessed(t *testing.T, srv *redistest.Server, n int) {
	t.Helper()
	redistest.Eventually(t, 60*time.Second, func() bool {
		return getInt(t, srv, queue.StatKey(ns, "processed")) >= n
	}, "stat:processed never reached %d", n)
}

func failures(t *testing.T, srv *redistest.Server) []queue.Failure {
	t.Helper()
	c := queue.New(srv.Pool(t), ns)
	fs, err := c.Failures(context.Background(), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// cli runs a resqued subcommand and returns its stdout, stderr and exit code.
func cli(t *testing.T, srv *redistest.Server, args ...string) (string, string, int) {
	t.Helper()
	return cliEnv(t, srv, nil, args...)
}

// cliEnv is cli with extra environment variables.
func cliEnv(t *testing.T, srv *redistest.Server, env []string, args ...string) (string, string, int) {
	t.Helper()
	return cliIO(t, srv, env, "", args...)
}

// cliIO is cliEnv with stdin.
func cliIO(t *testing.T, srv *redistest.Server, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(resqued, args...)
	cmd.Env = append(append(os.Environ(), "REDIS_URL="+srv.URL(), noRaceExitSleep), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(stdout.String()), stderr.String(), code
}

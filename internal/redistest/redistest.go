// Package redistest starts a private redis-server for tests, and for the
// high-availability tests replicas of one (StartReplica) and the
// redis-sentinel processes that watch it (StartSentinels).
//
// Every server listens on a free loopback port (never 6379), keeps nothing
// on disk unless asked to, and is stopped by tb.Cleanup. Tests never share
// a server with each other or with a developer's own Redis.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Server is one running redis-server owned by a test.
type Server struct {
	Addr string // host:port on 127.0.0.1
	Dir  string // working directory (AOF/RDB files live here)

	tb       testing.TB
	args     []string
	password string
	// sentinel, when set, is the config a redis-sentinel runs with
	// instead of a redis-server.
	sentinel []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
	// output is what the running process printed, and died, set when it
	// exited without Stop: what a failed dial reports (diagnose).
	output func() string
	died   string
}

// Option adds redis-server arguments, e.g. Args("--appendonly", "yes").
type Option func(*Server)

// Args passes extra command-line arguments to redis-server.
func Args(a ...string) Option { return func(s *Server) { s.args = append(s.args, a...) } }

// Password makes the server require pw (requirepass) and, as a replica,
// give it to its primary (masterauth); Do and Pool log in with it. For a
// sentinel it is the sentinel's own password.
func Password(pw string) Option {
	return func(s *Server) {
		s.password = pw
		s.args = append(s.args, "--requirepass", pw)
		if s.sentinel == nil {
			s.args = append(s.args, "--masterauth", pw)
		}
	}
}

// Start runs a redis-server on a free loopback port and stops it when the
// test ends. It fails the test with an install hint when redis-server is
// missing.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatalf("redis-server not found on PATH: install it with `apt-get install -y redis-server` (make test does this via .ci/run)")
	}
	return startServer(tb, &Server{tb: tb, Dir: tb.TempDir()}, opts)
}

func startServer(tb testing.TB, s *Server, opts []Option) *Server {
	tb.Helper()
	for _, o := range opts {
		o(s)
	}
	if err := s.startOnFreePort(); err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// startOnFreePort starts s on a free loopback port, trying another port
// up to five times (one may be taken between finding it and binding it).
func (s *Server) startOnFreePort() error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			return fmt.Errorf("find free port: %w", err)
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		if err = s.start(); err == nil {
			return nil
		}
	}
	return fmt.Errorf("start redis-server: %w", err)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{
		"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", s.Dir, "--daemonize", "no",
		"--loglevel", "notice", "--logfile", "",
	}
	bin, readyLine := "redis-server", "Ready to accept connections"
	if s.sentinel != nil {
		// Sentinel rewrites its config file: each start writes a fresh
		// one. Its log has no "Ready" line; it is ready once it
		// monitors its master.
		conf := filepath.Join(s.Dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(strings.Join(s.sentinel, "\n")+"\n"), 0o600); err != nil {
			return err
		}
		bin, readyLine = "redis-sentinel", "+monitor master"
		args = []string{conf, "--port", port, "--bind", "127.0.0.1", "--dir", s.Dir,
			"--daemonize", "no", "--loglevel", "notice", "--logfile", ""}
	}
	args = append(args, s.args...)
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	log := &strings.Builder{}
	ready := make(chan struct{})
	var once sync.Once
	var logMu sync.Mutex
	go func() {
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			logMu.Lock()
			log.WriteString(line)
			logMu.Unlock()
			if strings.Contains(line, readyLine) {
				once.Do(func() { close(ready) })
			}
			if err != nil {
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
	}()
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		if s.cmd == cmd { // not stopped: it died
			s.died = fmt.Sprintf("%s exited on its own at %s (%v)", bin, time.Now().Format("15:04:05.000"), err)
		}
		s.mu.Unlock()
		exited <- err
	}()
	select {
	case <-ready:
	case err := <-exited:
		logMu.Lock()
		defer logMu.Unlock()
		return fmt.Errorf("%s on %s exited (%v): %s", bin, s.Addr, err, log.String())
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		return fmt.Errorf("%s on %s not ready after 20s", bin, s.Addr)
	}
	s.mu.Lock()
	s.cmd, s.exited, s.died = cmd, exited, ""
	s.output = func() string {
		logMu.Lock()
		defer logMu.Unlock()
		out := log.String()
		if len(out) > 4000 {
			out = "..." + out[len(out)-4000:]
		}
		return out
	}
	s.mu.Unlock()
	return nil
}

// diagnose says, for a failed dial, whether the server died on its own
// and what it printed last.
func (s *Server) diagnose() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.died != "":
		return "; " + s.died + "; its output:\n" + s.output()
	case s.cmd != nil:
		return fmt.Sprintf("; redis-server pid %d is still running; its output:\n%s", s.cmd.Process.Pid, s.output())
	}
	return "; the server was stopped"
}

// Stop shuts the server down. It is safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		s.tb.Logf("redis-server pid %d did not exit after SIGKILL", cmd.Process.Pid)
	}
}

// Signal sends sig to the running redis-server (the fault suite uses
// SIGSTOP and SIGCONT to freeze it). It reports whether a server was
// running to receive it.
func (s *Server) Signal(sig os.Signal) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	return s.cmd.Process.Signal(sig) == nil
}

// Restart stops the server and starts it again on the same port and
// directory, so that data persisted with AOF survives.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	var err error
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.tb.Fatalf("restart redis-server: %v", err)
}

// URL is the redis:// URL of the server (with its password, if any).
func (s *Server) URL() string {
	if s.password != "" {
		return "redis://:" + s.password + "@" + s.Addr
	}
	return "redis://" + s.Addr
}

// Pool returns a connection pool to the server, closed on cleanup.
func (s *Server) Pool(tb testing.TB) *redis.Pool {
	tb.Helper()
	p := &redis.Pool{
		MaxIdle:     8,
		IdleTimeout: time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", s.Addr, redis.DialPassword(s.password))
		},
		// Tests restart servers: never hand out a connection that died.
		TestOnBorrow: func(c redis.Conn, _ time.Time) error {
			_, err := c.Do("PING")
			return err
		},
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// Do runs one command on a fresh connection and fails the test on error.
func (s *Server) Do(tb testing.TB, cmd string, args ...interface{}) interface{} {
	tb.Helper()
	c, err := redis.Dial("tcp", s.Addr, redis.DialPassword(s.password))
	if err != nil {
		tb.Fatalf("dial %s: %v%s", s.Addr, err, s.diagnose())
	}
	defer c.Close()
	v, err := c.Do(cmd, args...)
	if err != nil && !errors.Is(err, redis.ErrNil) {
		tb.Fatalf("%s %v: %v", cmd, args, err)
	}
	return v
}

// Namespace returns a namespace unique to the test, for parallel tests that
// share one server.
func Namespace(tb testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "_", ":", "_").Replace(tb.Name())
	return "test-" + name
}

// Eventually polls cond every few milliseconds until it returns true or the
// deadline passes, then fails the test with msg. Tests use it instead of
// fixed sleeps.
func Eventually(tb testing.TB, within time.Duration, cond func() bool, msg string, args ...interface{}) {
	tb.Helper()
	deadline := time.Now().Add(within)
	delay := time.Millisecond
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %s: "+msg, append([]interface{}{within}, args...)...)
		}
		time.Sleep(delay)
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// Build compiles the package pkg (e.g. "github.com/resqued/resqued/cmd/resqued")
// with the race detector into dir and returns the binary's path. End-to-end
// test packages call it once from TestMain.
func Build(pkg, dir string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-race", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// RunWithBinary is a TestMain body for end-to-end packages: it builds pkg
// (with the race detector) into a temporary directory, stores its path in
// *bin, runs the tests, and removes the directory.
func RunWithBinary(m *testing.M, pkg string, bin *string) int {
	dir, err := os.MkdirTemp("", "resqued-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = Build(pkg, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// RunWithServer is a TestMain body for packages whose runnable examples
// need Redis (an Example takes no testing.TB): it starts one redis-server
// for the package as Start does, stores its address in *addr, runs the
// tests and examples, and stops the server. Without redis-server the run
// fails, with the same install hint as Start: it never skips.
func RunWithServer(m *testing.M, addr *string) int {
	if _, err := exec.LookPath("redis-server"); err != nil {
		fmt.Fprintln(os.Stderr, "redis-server not found on PATH: install it with `apt-get install -y redis-server` (make test does this via .ci/run)")
		return 1
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	s := &Server{Dir: dir}
	if err := s.startOnFreePort(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	}()
	*addr = s.Addr
	return m.Run()
}

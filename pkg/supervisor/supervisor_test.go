package supervisor_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/resqued/resqued/pkg/supervisor"
)

// The test binary doubles as the worker: the supervisor re-executes it
// with GO_WANT_HELPER_PROCESS=1, and TestMain then acts as one worker
// process instead of running tests (go-plugin's helper-process pattern).
//
// A helper worker records what a test checks in HELPER_DIR:
//   - <pid>.env: its environment, first the raw /proc/self/environ (as
//     the kernel laid it out, which is what a process title can use),
//     then a line "--", then os.Environ(); written once its signal
//     handlers are in place, so a test that saw it may signal it;
//   - <pid>.sigs: one line per signal received, in order;
//   - <pid>.exit0: in HELPER_MODE=exit0, that it ran.
//
// It exits 0 on QUIT, TERM or INT, 2 on HUP (a worker refusing its
// configuration), and at once with 0 in HELPER_MODE=exit0.

func TestMain(m *testing.M) {
	if os.Getenv("GO_WANT_HELPER_PROCESS") == "1" {
		os.Exit(helperWorker(os.Getenv("HELPER_MODE"), os.Getenv("HELPER_DIR")))
	}
	os.Exit(m.Run())
}

func helperWorker(mode, dir string) int {
	if mode == "exit0" {
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())+".exit0"), nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCONT, syscall.SIGHUP)
	pid := strconv.Itoa(os.Getpid())
	raw, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := strings.ReplaceAll(strings.TrimRight(string(raw), "\x00"), "\x00", "\n") + "\n--\n" + strings.Join(os.Environ(), "\n") + "\n"
	if err := writeAtomic(filepath.Join(dir, pid+".env"), env); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log, err := os.OpenFile(filepath.Join(dir, pid+".sigs"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer log.Close()
	for sig := range sigs {
		fmt.Fprintln(log, unix.SignalName(sig.(syscall.Signal)))
		switch sig {
		case syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGINT:
			return 0
		case syscall.SIGHUP:
			return 2
		}
	}
	return 1
}

// writeAtomic writes name so that a reader sees all of it or nothing.
func writeAtomic(name, data string) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// child is what one helper worker recorded about itself.
type child struct {
	pid int
	raw []string          // /proc/self/environ, in the kernel's order
	env map[string]string // os.Environ()
}

// harness runs a Supervisor over helper workers.
type harness struct {
	t   *testing.T
	dir string
	s   *supervisor.Supervisor

	mu     sync.Mutex
	titles []string
	reaped []reap

	done chan struct{}
	err  error
}

type reap struct {
	pid   int
	token string
}

func newHarness(t *testing.T, count int, mode string) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), done: make(chan struct{})}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GO_WANT_HELPER_PROCESS=1", "HELPER_MODE="+mode, "HELPER_DIR="+h.dir,
		supervisor.EnvTitleRoom+"=stale") // replaced, not kept twice
	h.s, err = supervisor.New(supervisor.Config{
		Count: count, Path: exe, Args: []string{"-test.run=^$"}, Env: env,
		MinRestartDelay: 10 * time.Millisecond,
		Reap: func(_ context.Context, pid int, token string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.reaped = append(h.reaped, reap{pid, token})
			return nil
		},
		SetTitle: func(s string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.titles = append(h.titles, s)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// run starts Run with ctx; the test's cleanup stops whatever is left.
func (h *harness) run(ctx context.Context) {
	go func() { h.err = h.s.Run(ctx); close(h.done) }()
	h.t.Cleanup(func() {
		h.s.Signal(syscall.SIGTERM) // no replacements from here on
		h.s.Signal(syscall.SIGKILL)
		select {
		case <-h.done:
		case <-time.After(30 * time.Second):
			h.t.Error("supervisor did not return after its workers were killed")
		}
	})
}

// wait waits for Run to return and fails the test if it returned an error.
func (h *harness) wait() {
	h.t.Helper()
	select {
	case <-h.done:
		if h.err != nil {
			h.t.Fatalf("Run: %v", h.err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatal("Run did not return within 30s")
	}
}

// children returns every helper worker that has started so far.
func (h *harness) children() []child {
	h.t.Helper()
	names, err := filepath.Glob(filepath.Join(h.dir, "*.env"))
	if err != nil {
		h.t.Fatal(err)
	}
	var out []child
	for _, name := range names {
		pid, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(name), ".env"))
		if err != nil {
			h.t.Fatal(err)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			h.t.Fatal(err)
		}
		raw, env, ok := strings.Cut(string(b), "\n--\n")
		if !ok {
			h.t.Fatalf("%s: no separator", name)
		}
		c := child{pid: pid, raw: strings.Split(raw, "\n"), env: map[string]string{}}
		for _, kv := range strings.Split(strings.TrimSpace(env), "\n") {
			k, v, _ := strings.Cut(kv, "=")
			c.env[k] = v
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

// waitChildren waits until n helper workers have started and returns them.
func (h *harness) waitChildren(n int) []child {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs := h.children()
		if len(cs) >= n {
			return cs
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d of %d workers started within 30s", len(cs), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// signals returns the signals pid has recorded.
func (h *harness) signals(pid int) []string {
	b, _ := os.ReadFile(filepath.Join(h.dir, strconv.Itoa(pid)+".sigs"))
	return strings.Fields(string(b))
}

// waitSignals waits until pid has recorded want, in that order.
func (h *harness) waitSignals(pid int, want ...string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := h.signals(pid)
		if strings.Join(got, " ") == strings.Join(want, " ") {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("worker %d recorded signals %q, want %q", pid, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) reaps() []reap {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]reap(nil), h.reaped...)
}

// gone reports whether pid is no longer a process (the supervisor has
// waited for it, so it is not a zombie either).
func gone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// state returns pid's state letter from /proc/<pid>/stat, 0 if unknown.
func state(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')') // comm may hold anything
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, cfg := range []supervisor.Config{{Count: 0, Path: "/bin/true"}, {Count: 1}} {
		if _, err := supervisor.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestTitleRoom(t *testing.T) {
	t.Parallel()
	got := supervisor.TitleRoom([]string{"A=1", supervisor.EnvTitleRoom + "=x", "B=2"})
	want := []string{supervisor.EnvTitleRoom + "=" + strings.Repeat(" ", supervisor.TitleRoomSize), "A=1", "B=2"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("TitleRoom = %q, want %q", got, want)
	}
}

// TestSupervisor_Start: Count children start, each with the supervisor's
// pid, a lease token of its own, the configured environment, and the
// title room as the first string of its environment block; the
// supervisor sets its own title; cancelling the context sends QUIT and Run
// returns once they all exited, without reaping anybody.
func TestSupervisor_Start(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3, "wait")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.run(ctx)
	cs := h.waitChildren(3)

	tokens := map[string]bool{}
	room := supervisor.EnvTitleRoom + "=" + strings.Repeat(" ", supervisor.TitleRoomSize)
	for _, c := range cs {
		if got, want := c.env[supervisor.EnvParentPID], strconv.Itoa(os.Getpid()); got != want {
			t.Errorf("worker %d: %s=%q, want %q", c.pid, supervisor.EnvParentPID, got, want)
		}
		tok := c.env[supervisor.EnvLeaseToken]
		if len(tok) != 32 || strings.Trim(tok, "0123456789abcdef") != "" {
			t.Errorf("worker %d: lease token %q, want 32 hex digits", c.pid, tok)
		}
		tokens[tok] = true
		if got := c.env["HELPER_DIR"]; got != h.dir {
			t.Errorf("worker %d: configured env not passed: HELPER_DIR=%q", c.pid, got)
		}
		if c.raw[0] != room {
			t.Errorf("worker %d: first environment string %.40q, want the title room", c.pid, c.raw[0])
		}
		n := 0
		for _, kv := range c.raw {
			if strings.HasPrefix(kv, supervisor.EnvTitleRoom+"=") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("worker %d: %d %s entries, want 1", c.pid, n, supervisor.EnvTitleRoom)
		}
	}
	if len(tokens) != 3 {
		t.Errorf("lease tokens %v: want one of its own per worker", tokens)
	}

	cancel()
	h.wait()
	for _, c := range cs {
		if got := h.signals(c.pid); strings.Join(got, " ") != "SIGQUIT" {
			t.Errorf("worker %d got %q on cancel, want SIGQUIT", c.pid, got)
		}
		if !gone(c.pid) {
			t.Errorf("worker %d still running after Run returned", c.pid)
		}
	}
	if got := len(h.children()); got != 3 {
		t.Errorf("%d workers started, want 3", got)
	}
	if r := h.reaps(); len(r) != 0 {
		t.Errorf("reaped %v after a clean shutdown", r)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.titles) == 0 || h.titles[0] != "resqued supervisor of 3 workers" {
		t.Errorf("titles %q", h.titles)
	}
}

// TestSupervisor_Restart: a worker killed with -9 is reaped under its own
// pid and lease token and replaced by a new process with a new token; the
// other slot's worker is left alone.
func TestSupervisor_Restart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, "wait")
	h.run(context.Background())
	cs := h.waitChildren(2)
	victim, other := cs[0], cs[1]
	if err := syscall.Kill(victim.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	now := h.waitChildren(3)
	var repl child
	for _, c := range now {
		if c.pid != victim.pid && c.pid != other.pid {
			repl = c
		}
	}
	if got, want := h.reaps(), []reap{{victim.pid, victim.env[supervisor.EnvLeaseToken]}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reaped %v, want %v", got, want)
	}
	if repl.env[supervisor.EnvLeaseToken] == victim.env[supervisor.EnvLeaseToken] || repl.env[supervisor.EnvLeaseToken] == "" {
		t.Errorf("replacement token %q, victim's %q: want a new one", repl.env[supervisor.EnvLeaseToken], victim.env[supervisor.EnvLeaseToken])
	}
	if gone(other.pid) {
		t.Errorf("the other slot's worker %d is gone", other.pid)
	}

	h.s.Signal(syscall.SIGTERM)
	h.wait()
	for _, c := range []child{other, repl} {
		if got := h.signals(c.pid); strings.Join(got, " ") != "SIGTERM" {
			t.Errorf("worker %d got %q, want SIGTERM", c.pid, got)
		}
	}
	if got := len(h.children()); got != 3 {
		t.Errorf("%d workers started in all, want 3: 2 and one replacement", got)
	}
	if got := len(h.reaps()); got != 1 {
		t.Errorf("%d reaps, want only the killed worker's", got)
	}
}

// TestSupervisor_Signal: USR1, USR2 and CONT reach every worker, in the
// order sent, and leave them running; QUIT then stops them all.
func TestSupervisor_Signal(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, "wait")
	h.run(context.Background())
	cs := h.waitChildren(2)
	var want []string
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCONT, syscall.SIGQUIT} {
		h.s.Signal(sig)
		want = append(want, unix.SignalName(sig))
		for _, c := range cs {
			h.waitSignals(c.pid, want...)
		}
	}
	h.wait()
	for _, c := range cs {
		if !gone(c.pid) {
			t.Errorf("worker %d still running", c.pid)
		}
	}
	if got := len(h.children()); got != 2 {
		t.Errorf("%d workers started, want 2: none replaced", got)
	}
}

// TestSupervisor_NoRestartWhileStopping: after TERM, a worker that dies
// instead of exiting is reaped but not replaced.
func TestSupervisor_NoRestartWhileStopping(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, "wait")
	h.run(context.Background())
	cs := h.waitChildren(1)
	// The worker's TERM handler exits 0; SIGSTOP it first so that the
	// TERM stays pending, then SIGKILL it: it dies while stopping.
	if err := syscall.Kill(cs[0].pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for state(cs[0].pid) != 'T' {
		if time.Now().After(deadline) {
			t.Fatalf("worker %d not stopped within 30s", cs[0].pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.s.Signal(syscall.SIGTERM)
	if err := syscall.Kill(cs[0].pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.wait()
	if got := len(h.children()); got != 1 {
		t.Errorf("%d workers started, want no replacement while stopping", got)
	}
	if got, want := h.reaps(), []reap{{cs[0].pid, cs[0].env[supervisor.EnvLeaseToken]}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reaped %v, want %v", got, want)
	}
}

// TestSupervisor_Status2: a worker exiting with status 2 (it refused its
// configuration) is not replaced, and the others are told to QUIT.
func TestSupervisor_Status2(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, "wait")
	h.run(context.Background())
	cs := h.waitChildren(2)
	if err := syscall.Kill(cs[0].pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	h.wait()
	if got := h.signals(cs[1].pid); strings.Join(got, " ") != "SIGQUIT" {
		t.Errorf("other worker got %q, want SIGQUIT", got)
	}
	if got := len(h.children()); got != 2 {
		t.Errorf("%d workers started, want no replacement", got)
	}
	if r := h.reaps(); len(r) != 0 {
		t.Errorf("reaped %v: a worker that refused its configuration has no job", r)
	}
}

// TestSupervisor_AllExitZero: workers that exit 0 on their own (INTERVAL=0
// drained the queues) are not replaced, and Run returns.
func TestSupervisor_AllExitZero(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3, "exit0")
	h.run(context.Background())
	h.wait()
	if r := h.reaps(); len(r) != 0 {
		t.Errorf("reaped %v after clean exits", r)
	}
	if ran, _ := filepath.Glob(filepath.Join(h.dir, "*.exit0")); len(ran) != 3 {
		t.Errorf("%d workers ran, want 3 and no replacements", len(ran))
	}
}

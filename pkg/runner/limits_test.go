//go:build linux

package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/testskip"
)

// runLimited runs the handler class of r under l and returns its
// *ExitError, failing the test on any other outcome.
func runLimited(t *testing.T, r *Runner, class string, l *Limits) *ExitError {
	t.Helper()
	p, err := r.Start(context.Background(), Job{Class: class, Limits: l})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	_, err = waitWithin(t, p, 30*time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run = %v, want an *ExitError", err)
	}
	return ee
}

// python returns a "#!" line for python3's own interpreter (not a
// version manager's shell shim, which would run processes of its own),
// skipping, visibly, where there is none.
func python(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		testskip.Skipf(t, "python3 not usable (%v): the memory tests' handlers are python scripts", err)
	}
	return "#!" + strings.TrimSpace(string(out)) + "\n"
}

// waitGroupGone waits until no process is left in process group pgid.
func waitGroupGone(t *testing.T, pgid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _ := sampleGroup(pgid, nil)
		if s.members == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has %d processes", pgid, s.members)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLimits_Memory(t *testing.T) {
	t.Parallel()
	py := python(t)

	t.Run("group over the limit is killed", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{Limits: Limits{Memory: 32 << 20}})
		// Shared memory is not RLIMIT_DATA's: only the watcher sees it.
		writeScript(t, r.Dir(), "Hog", py+`import mmap, time
m = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_SHARED)
for i in range(0, len(m), 4096):
    m[i] = 1
time.sleep(60)
`)
		ee := runLimited(t, r, "Hog", nil)
		if ee.Limit != LimitMemory || ee.LimitMax != 32<<20 || ee.LimitSeen <= 32<<20 {
			t.Fatalf("Limit %q max %d seen %d, want memory over 32 MiB: %v", ee.Limit, ee.LimitMax, ee.LimitSeen, ee)
		}
		if msg := ee.Error(); !strings.HasPrefix(msg, "handler Hog was killed: memory limit 32 MiB (peak ") || !strings.HasSuffix(msg, " MiB)") {
			t.Errorf("Error() = %q", msg)
		}
	})

	t.Run("growth past the limit fails at it", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		// 8 MiB at a time, as fast as it can: the watcher kills it, or
		// the rlimit above the limit refuses it more; either way its
		// peak passed the limit and the failure says memory.
		// The kernel's peak of a handler started through the shim covers
		// the shim, this binary, and is believed only well above the
		// shim's own (handlerMaxRSS): the limit is above that, which
		// matters under -race.
		limit := int64(48 << 20)
		for limit < 2*shimPeak() {
			limit *= 2
		}
		writeScript(t, r.Dir(), "Grow", py+fmt.Sprintf(`chunks = []
for i in range(%d):
    chunks.append(bytearray(8 << 20))
`, 3*limit/(8<<20)))
		ee := runLimited(t, r, "Grow", &Limits{Memory: limit})
		if ee.Limit != LimitMemory || ee.LimitSeen <= limit {
			t.Fatalf("Limit %q seen %d, want memory past %d: %v", ee.Limit, ee.LimitSeen, limit, ee)
		}
		msg, at := ee.Error(), "memory limit "+SizeString(limit)+" (peak "
		killed := strings.HasPrefix(msg, "handler Grow was killed: "+at)
		refused := strings.HasPrefix(msg, "handler Grow exited with status 1 at its "+at) &&
			strings.HasSuffix(msg, "): an allocation past it was refused") && ee.LimitRefused
		if !killed && !refused {
			t.Errorf("Error() = %q, want killed or refused at the memory limit", msg)
		}
	})

	t.Run("allocation refused by RLIMIT_DATA", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, Config{})
		writeScript(t, r.Dir(), "Big", py+"b = bytearray(200 << 20)\n")
		ee := runLimited(t, r, "Big", &Limits{Memory: 64 << 20, CPU: 30 * time.Second})
		if ee.Limit != "" || ee.Code != 1 {
			t.Fatalf("Limit %q code %d, want a plain exit 1: %v", ee.Limit, ee.Code, ee)
		}
		if got, want := ee.Error(), "handler Big exited with status 1 (limits in force: memory 64 MiB, cpu 30s)"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
		if tail := strings.Join(ee.StderrTail, "\n"); !strings.Contains(tail, "MemoryError") {
			t.Errorf("stderr tail %q, want python's MemoryError", tail)
		}
	})
}

// A handler stopped by resqued (a cancel, a shutdown) ended for that
// reason: its failure does not list the limits in force.
func TestLimits_StoppedNotBlamed(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{Limits: Limits{CPU: 30 * time.Second}})
	writeScript(t, r.Dir(), "Nap", "#!/bin/sh\nexec sleep 60\n")
	p, err := r.Start(context.Background(), Job{Class: "Nap"})
	if err != nil {
		t.Fatal(err)
	}
	p.Stop()
	_, err = waitWithin(t, p, 30*time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) || !ee.Stopped {
		t.Fatalf("Wait = %v, want a stopped handler", err)
	}
	if got, want := ee.Error(), "handler Nap killed by signal SIGTERM"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestLimits_CPU(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{Limits: Limits{CPU: time.Second}})
	writeScript(t, r.Dir(), "Spin", "#!/bin/sh\nwhile :; do :; done\n")
	ee := runLimited(t, r, "Spin", nil)
	if ee.Limit != LimitCPU || ee.LimitSeen < int64(time.Second) {
		t.Fatalf("Limit %q seen %s, want cpu past 1s: %v", ee.Limit, time.Duration(ee.LimitSeen), ee)
	}
	if msg := ee.Error(); !strings.HasPrefix(msg, "handler Spin was killed: CPU time limit 1s (used ") {
		t.Errorf("Error() = %q", msg)
	}
}

func TestLimits_Output(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{})
	// yes writes until it is stopped: only the limit ends it.
	writeScript(t, r.Dir(), "Flood", "#!/bin/sh\nexec yes flood\n")
	ee := runLimited(t, r, "Flood", &Limits{Output: 64 << 10})
	if ee.Limit != LimitOutput || ee.Signal == 0 {
		t.Fatalf("Limit %q signal %v, want output: %v", ee.Limit, ee.Signal, ee)
	}
	if got, want := ee.Error(), "handler Flood was killed: output limit 64 KiB (wrote more than 64 KiB to stdout and stderr)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestLimits_Procs(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{Limits: Limits{Procs: 3}})
	writeScript(t, r.Dir(), "Forker", "#!/bin/sh\nfor i in 1 2 3 4 5 6; do sleep 60 & done\nwait\n")
	p, err := r.Start(context.Background(), Job{Class: "Forker"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = waitWithin(t, p, 30*time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Limit != LimitProcs || ee.LimitSeen <= 3 {
		t.Fatalf("Run = %v, want the process limit", err)
	}
	if msg := ee.Error(); !strings.HasPrefix(msg, "handler Forker was killed: process limit 3 (") || !strings.HasSuffix(msg, " processes in its group)") {
		t.Errorf("Error() = %q", msg)
	}
	waitGroupGone(t, p.Pid())
}

func TestLimits_Rlimits(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{})
	out := filepath.Join(t.TempDir(), "ulimits")
	writeScript(t, r.Dir(), "Ulimit", "#!/bin/sh\necho \"$(ulimit -d) $(ulimit -t) ${RESQUED_RLIMIT_SHIM:-unset}\" > "+shellQuote(out)+"\n")
	for _, tc := range []struct {
		name string
		l    *Limits
		want string
		shim bool
	}{
		{"none", nil, "unlimited unlimited unset", false},
		{"memory and cpu", &Limits{Memory: 64 << 20, CPU: 1500 * time.Millisecond}, "98304 2 unset", true}, // RLIMIT_DATA: 64 MiB + 32 MiB (dataLimit)
		{"procs only", &Limits{Procs: 50}, "unlimited unlimited unset", false},
	} {
		p, err := r.Start(context.Background(), Job{Class: "Ulimit", Limits: tc.l})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := waitWithin(t, p, 30*time.Second); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// Without rlimits to set the handler is started itself, not
		// through the shim.
		if got := p.cmd.Path == shimExe; got != tc.shim {
			t.Errorf("%s: started %s, through the shim %v, want %v", tc.name, p.cmd.Path, got, tc.shim)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); got != tc.want {
			t.Errorf("%s: ulimit -d, -t, shim env = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestLimits_NoLimitUnchanged(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{})
	writeHandler(t, r.Dir(), "Exit", helper{mode: "exit", arg: "3"})
	p, err := r.Start(context.Background(), Job{Class: "Exit"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = waitWithin(t, p, 30*time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Error() != "handler Exit exited with status 3" || ee.Limit != "" || !ee.InForce.IsZero() {
		t.Fatalf("Run = %v, want the unchanged message", err)
	}
	if p.watchStop != nil || p.output != nil {
		t.Error("a job without limits has a watcher or an output counter")
	}
}

func TestLimits_PerJobTimeout(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{Timeout: time.Hour})
	writeScript(t, r.Dir(), "Slow", "#!/bin/sh\nexec sleep 60\n")
	p, err := r.Start(context.Background(), Job{Class: "Slow", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = waitWithin(t, p, 30*time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) || !ee.TimedOut || ee.Timeout != 200*time.Millisecond {
		t.Fatalf("Run = %v, want a timeout after the job's 200ms", err)
	}
}

func TestLimits_Persistent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Floods on "flood", answers ok otherwise.
	writeScript(t, dir, "Chatty.persistent.sh", `#!/bin/sh
while IFS= read -r line; do
  case "$line" in
    *flood*) yes flood ;;
    *) echo "a line" ; echo '{"done":"ok"}' >&3 ;;
  esac
done
`)
	r := newTestRunner(t, Config{Dir: dir, Limits: Limits{Output: 16 << 10}})
	s := r.NewSlot(SlotConfig{})
	t.Cleanup(s.Close)
	run := func(arg string) error {
		t.Helper()
		j, err := s.Start(context.Background(), Job{Class: "Chatty", Args: []byte(`["` + arg + `"]`)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = j.Wait()
		return err
	}
	// The output limit is per job: many small jobs stay under it.
	for i := 0; i < 3; i++ {
		if err := run("ok"); err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	err := run("flood")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Limit != LimitOutput {
		t.Fatalf("flood job: %v, want the output limit", err)
	}
	// The process is replaced, as after any death.
	if err := run("ok"); err != nil {
		t.Fatalf("after the limit: %v", err)
	}
}

func TestLimits_String(t *testing.T) {
	for _, tc := range []struct {
		l    Limits
		want string
	}{
		{Limits{}, "no limits"},
		{Limits{Memory: 512 << 20, CPU: 30 * time.Second, Output: 100 << 20, Procs: 8}, "memory 512 MiB, cpu 30s, output 100 MiB, procs 8"},
		{Limits{Memory: 3 << 29}, "memory 1.5 GiB"},
		{Limits{Output: 700}, "output 700 bytes"},
	} {
		if got := tc.l.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.l, got, tc.want)
		}
	}
	if _, err := New(Config{Dir: t.TempDir(), Limits: Limits{Procs: -1}}); err == nil || err.Error() != "limits: process limit -1: must not be negative" {
		t.Errorf("New with a negative limit: %v", err)
	}
}

// BenchmarkSpawnLimits measures the rlimit shim's cost per job.
func BenchmarkSpawnLimits(b *testing.B) {
	for _, bc := range []struct {
		name string
		l    *Limits
	}{
		{"none", nil},
		{"shim", &Limits{Output: 1 << 30}},                   // the shim, no watcher
		{"watch", &Limits{Procs: 100}},                       // the watcher, no shim
		{"both", &Limits{Memory: 1 << 30, CPU: time.Minute}}, // both
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newTestRunner(b, Config{})
			writeScript(b, r.Dir(), "True", "#!/bin/sh\n")
			for b.Loop() {
				if _, err := r.Run(context.Background(), Job{Class: "True", Limits: bc.l}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestGroupUsage_Hit: what a cgroup saw names the limit (the CGROUP
// SEAM's reading of groupUsage).
func TestGroupUsage_Hit(t *testing.T) {
	l := Limits{Memory: 512 << 20, Procs: 4}
	ee := &ExitError{Class: "Resize", Code: -1}
	h := groupUsage{OOMKilled: true, MemoryPeak: 514 << 20}.hit(l)
	ee.Limit, ee.LimitMax, ee.LimitSeen = h.limit, h.max, h.seen
	if got, want := ee.Error(), "handler Resize was killed: memory limit 512 MiB (peak 514 MiB)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if h := (groupUsage{PidsMaxHit: true}).hit(l); h == nil || h.limit != LimitProcs {
		t.Errorf("pids.max hit: %+v, want the process limit", h)
	}
	if h := (groupUsage{MemoryPeak: 1 << 20}).hit(l); h != nil {
		t.Errorf("nothing hit: %+v", h)
	}
}

// The rlimit shim is a Go program that already maps more than a small
// RLIMIT_DATA allows: it must exec the handler without a mapping of its
// own in between, or some runs die in the shim ("fatal error: runtime:
// out of memory", about one in twelve before the fix) instead of running
// the handler.
func TestLimits_ShimUnderSmallDataLimit(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{Limits: Limits{Memory: 16 << 20}})
	writeScript(t, r.Dir(), "Quick", "#!/bin/sh\nexit 0\n")
	for i := 0; i < 150; i++ {
		// GOGC=1 (inherited by the shim) makes its runtime collect and
		// remap at nearly every allocation: a shim that allocates
		// after setting the limit then dies at once.
		if _, err := r.Run(context.Background(), Job{Class: "Quick", Env: []string{"GOGC=1"}}); err != nil {
			var ee *ExitError
			if errors.As(err, &ee) {
				t.Fatalf("run %d: %v\n%s", i, err, strings.Join(ee.StderrTail, "\n"))
			}
			t.Fatalf("run %d: %v", i, err)
		}
	}
}

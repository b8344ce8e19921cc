package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/internal/testproc"
	"github.com/resqued/resqued/pkg/queue"
)

// TestCount_WholeTitles: under COUNT=3, started with as little room for a
// title as a process can have (argv[0] "r", first environment string
// "A=1", everything else in the environment), every worker shows its whole
// "Processing" title with a 60-character class, and the supervisor its
// whole title; handlers do not inherit the padding that makes the room.
// TestCount checks the titles' form with a long command line.
func TestCount_WholeTitles(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, gate := t.TempDir(), t.TempDir()
	const class = "QuarterlyRevenueByRegionAndProductLineExporterWithCurrencyJo"
	if len(class) != 60 {
		t.Fatalf("class name has %d characters, want 60", len(class))
	}
	handler(t, dir, class, `n=$(tr -dc 0-9); [ -z "${RESQUED_TITLE_ROOM+set}" ] || touch "`+gate+`/leak.$n"; touch "`+gate+`/started.$n"; while [ ! -e "`+gate+`/go.$n" ]; do sleep 0.02; done`)

	cmd := &exec.Cmd{Path: resqued, Args: []string{"r"}}
	cmd.Env = []string{"A=1", "PATH=" + os.Getenv("PATH"), noRaceExitSleep,
		"REDIS_URL=" + srv.URL(), "RESQUED_HANDLERS=" + dir, "QUEUES=default", "COUNT=3", "VVERBOSE=1"}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second // workers left behind hold the output pipe
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	release := func() {
		for i := 1; i <= 3; i++ {
			if err := os.WriteFile(filepath.Join(gate, "go."+strconv.Itoa(i)), nil, 0o644); err != nil {
				t.Error(err)
			}
		}
	}
	var ids []string
	var procs []testproc.Proc // the workers, named while they run
	t.Cleanup(func() {
		select {
		case <-d.done:
		default: // the test failed half-way: let everything finish
			release()
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-d.done:
			case <-time.After(20 * time.Second):
				for _, p := range procs {
					p.Kill()
				}
				_ = cmd.Process.Kill()
				<-d.done
			}
		}
		if t.Failed() {
			t.Logf("resqued output:\n%s", out.String())
		}
	})

	redistest.Eventually(t, 30*time.Second, func() bool { ids = workers(t, srv); return len(ids) == 3 }, "3 workers never registered")
	for _, id := range ids {
		if p, ok := testproc.Find(pidOf(t, id)); ok {
			procs = append(procs, p)
		}
	}
	for i := 1; i <= 3; i++ {
		push(t, srv, "default", `{"class":"`+class+`","args":[`+strconv.Itoa(i)+`]}`)
	}
	for i := 1; i <= 3; i++ {
		f := filepath.Join(gate, "started."+strconv.Itoa(i))
		redistest.Eventually(t, 30*time.Second, func() bool { _, err := os.Stat(f); return err == nil }, "job %d never started", i)
	}

	want := regexp.MustCompile(`^resqued resque-[0-9][^ :]*: Processing default since [0-9]{10} \[` + class + `\]$`)
	for _, id := range ids {
		pid := pidOf(t, id)
		// The title changes just before the handler starts: at most a
		// moment's wait.
		got := title(pid)
		for deadline := time.Now().Add(10 * time.Second); !want.MatchString(got) && time.Now().Before(deadline); got = title(pid) {
			time.Sleep(10 * time.Millisecond)
		}
		if !want.MatchString(got) {
			t.Errorf("worker %s: title %q, want the whole of %s", id, got, want)
		}
	}
	if got, want := title(d.cmd.Process.Pid), "resqued supervisor of 3 workers"; got != want {
		t.Errorf("supervisor title %q, want %q", got, want)
	}
	if leaks, _ := filepath.Glob(filepath.Join(gate, "leak.*")); len(leaks) != 0 {
		t.Errorf("handlers saw RESQUED_TITLE_ROOM: %v", leaks)
	}

	d.signal(syscall.SIGQUIT)
	release()
	if err := d.wait(30 * time.Second); err != nil {
		t.Fatalf("supervisor exit: %v", err)
	}
	if got := getInt(t, srv, queue.StatKey(ns, "processed")); got != 3 {
		t.Errorf("processed = %d, want 3", got)
	}
	if fs := failures(t, srv); len(fs) != 0 {
		t.Errorf("failures: %+v", fs)
	}
}

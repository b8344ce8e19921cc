package main

import (
	"errors"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/supervisor"
	"github.com/resqued/resqued/pkg/worker"
)

// runWorkerConfig parses args with the daemon's flags and returns what
// workerConfig makes of them.
func runWorkerConfig(t *testing.T, args ...string) (worker.Config, error) {
	t.Helper()
	for _, k := range []string{"QUEUES", "QUEUE", "COUNT", "INTERVAL", "RESQUE_TERM_TIMEOUT", "RESQUED_ON_ORPHAN", "RESQUED_HOSTNAME", "RESQUED_MAX_REDELIVERIES"} {
		unsetenv(t, k)
	}
	var cfg worker.Config
	var cfgErr error
	app := &cli.App{Name: "resqued", Flags: runFlags(), ExitErrHandler: func(*cli.Context, error) {},
		Action: func(c *cli.Context) error { cfg, cfgErr = workerConfig(c); return nil }}
	all := append([]string{"resqued", "--handlers", t.TempDir(), "--log-level", "error"}, args...)
	if err := app.Run(all); err != nil {
		t.Fatalf("parse %q: %v", all, err)
	}
	if cfgErr == nil {
		t.Cleanup(func() { cfg.Queue.Close() })
	}
	return cfg, cfgErr
}

// TestWorkerConfig: the run flags as the worker gets them, with
// Resque's meanings: INTERVAL=0 drains, fractions of seconds count,
// QUEUES is split and trimmed, and the namespace loses php-resque's
// trailing colon.
func TestWorkerConfig(t *testing.T) {
	cfg, err := runWorkerConfig(t, "--queues", " high, ,default ", "--interval", "0",
		"--namespace", "app:", "--on-orphan", "fail", "--hostname", "web-3", "--max-redeliveries", "-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Queues, "|"); got != "high|default" {
		t.Errorf("queues %q", cfg.Queues)
	}
	if cfg.Interval >= 0 {
		t.Errorf("interval %v, want negative (drain)", cfg.Interval)
	}
	if got := cfg.Queue.Namespace(); got != "app" {
		t.Errorf("namespace %q", got)
	}
	if cfg.OnOrphan != "fail" || cfg.Hostname != "web-3" || cfg.MaxRedeliveries != -1 {
		t.Errorf("on-orphan %q hostname %q max-redeliveries %d", cfg.OnOrphan, cfg.Hostname, cfg.MaxRedeliveries)
	}
	if cfg.Runner == nil || cfg.Status == nil || cfg.SetTitle == nil || cfg.Logger == nil {
		t.Error("runner, status, title or logger missing")
	}

	cfg, err = runWorkerConfig(t, "--queues", "*", "--interval", "2.5")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Interval != 2500*time.Millisecond || cfg.Hostname == "" || cfg.OnOrphan != "requeue" {
		t.Errorf("interval %v hostname %q on-orphan %q", cfg.Interval, cfg.Hostname, cfg.OnOrphan)
	}
}

// TestWorkerConfig_Refused: flags that cannot work are usage errors, each
// with a hint, before anything starts.
func TestWorkerConfig_Refused(t *testing.T) {
	for name, args := range map[string][]string{
		"NoQueues":        {"--queues", " , "},
		"BadInterval":     {"--queues", "q", "--interval", "soon"},
		"NegativeTimeout": {"--queues", "q", "--timeout", "-1"},
		"OnOrphan":        {"--queues", "q", "--on-orphan", "ignore"},
		"Count":           {"--queues", "q", "--count", "0"},
		"HostnameColon":   {"--queues", "q", "--hostname", "web:3"},
		"HostnameSpace":   {"--queues", "q", "--hostname", "web 3"},
		"Redeliveries":    {"--queues", "q", "--max-redeliveries", "0"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := runWorkerConfig(t, args...)
			var ue *usageError
			if !errors.As(err, &ue) || ue.msg == "" || ue.hint == "" {
				t.Errorf("workerConfig(%q) = %v, want a usage error with a hint", args, err)
			}
		})
	}
}

// TestFromSupervisor: a worker started by the supervisor takes its
// parent's pid and its lease token from the environment the supervisor
// gave it.
func TestFromSupervisor(t *testing.T) {
	env := map[string]string{supervisor.EnvParentPID: "4242", supervisor.EnvLeaseToken: "0123abcd"}
	var cfg worker.Config
	fromSupervisor(&cfg, func(k string) string { return env[k] })
	if cfg.ParentPID != 4242 || cfg.LeaseToken != "0123abcd" {
		t.Errorf("ParentPID %d LeaseToken %q", cfg.ParentPID, cfg.LeaseToken)
	}
}

// TestMakeTitleRoom_Present: with the room already in the environment
// (the supervisor after its one re-exec), makeTitleRoom returns and
// execs nothing; were it to exec, this test binary would start over.
func TestMakeTitleRoom_Present(t *testing.T) {
	t.Setenv(supervisor.EnvTitleRoom, strings.Repeat(" ", supervisor.TitleRoomSize))
	makeTitleRoom()
}

// TestControl_Listen: Resque's signals reach the right action, in
// docs/operations.md's table: QUIT finishes, TERM/INT terminate and a
// second one forces, USR1 kills the job, USR2 pauses, CONT resumes.
func TestControl_Listen(t *testing.T) {
	var mu sync.Mutex
	var got []string
	record := func(name string) func() {
		return func() { mu.Lock(); defer mu.Unlock(); got = append(got, name) }
	}
	ctl := &control{stop: record("stop"), term: record("term"), force: record("force"),
		usr1: record("usr1"), pause: record("pause"), resume: record("resume")}
	stop := ctl.listen(hclog.NewNullLogger())
	defer stop()
	var want []string
	for _, step := range []struct {
		sig  syscall.Signal
		want string
	}{
		{syscall.SIGQUIT, "stop"}, {syscall.SIGUSR1, "usr1"}, {syscall.SIGUSR2, "pause"}, {syscall.SIGCONT, "resume"},
		{syscall.SIGTERM, "term"}, {syscall.SIGINT, "force"}, {syscall.SIGTERM, "force"},
	} {
		if err := syscall.Kill(os.Getpid(), step.sig); err != nil {
			t.Fatal(err)
		}
		want = append(want, step.want)
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n >= len(want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		g := strings.Join(got, " ")
		mu.Unlock()
		if g != strings.Join(want, " ") {
			t.Fatalf("after %v: actions %q, want %q", step.sig, g, strings.Join(want, " "))
		}
	}
}

func TestJobGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	jobGC(func(string) string { return "200" })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, GC percent = %d, want it left at 100", got)
	}
	jobGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != jobGCPercent {
		t.Errorf("without GOGC, GC percent = %d, want %d", got, jobGCPercent)
	}
}

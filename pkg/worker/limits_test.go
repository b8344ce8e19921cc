package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/pkg/handlerconfig"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/worker"
)

// TestWorker_ClassLimits: what the handlers config says of a class
// reaches its jobs (limits, env), and a limit kill is recorded under
// the limit's exception, not retried.
func TestWorker_ClassLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.handler(t, "Flood", `exec yes flood`)
	e.handler(t, "Spin", `while :; do :; done`)
	e.handler(t, "EnvLog", `echo "EnvLog $GREETING ${TRACEPARENT%-*-*}" >> "$RUNS"`)
	conf, err := handlerconfig.Parse("handlers.yml", []byte("classes:\n  Flood:\n    max_output: 64k\n  EnvLog:\n    env:\n      GREETING: hello\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.enqueue(t, "q", "Flood", `[]`)
	e.enqueue(t, "q", "Spin", `[]`)
	// A class's env and the payload's trace context both reach it.
	traced := []byte(`{"class":"EnvLog","args":[],"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`)
	if err := e.q.Enqueue(context.Background(), "q", traced, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t, 301)
	run, err := runner.New(runner.Config{Dir: e.dir, TermTimeout: 200 * time.Millisecond, Limits: runner.Limits{CPU: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Runner, cfg.Classes, cfg.Interval = run, conf.Jobs(runner.Limits{CPU: time.Second}), -1
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); err != nil {
		t.Fatalf("Run = %v", err)
	}
	got := map[string]string{}
	for _, f := range e.failures(t) {
		var class struct{ Class string }
		_ = json.Unmarshal(f.Payload, &class)
		got[class.Class] = f.Exception + ": " + f.Error
	}
	if want := "Resqued::OutputLimit: handler Flood was killed: output limit 64 KiB (wrote more than 64 KiB to stdout and stderr)"; got["Flood"] != want {
		t.Errorf("Flood failure %q, want %q", got["Flood"], want)
	}
	if want := "Resqued::CPULimit: handler Spin was killed: CPU time limit 1s (used "; !strings.HasPrefix(got["Spin"], want) {
		t.Errorf("Spin failure %q, want %q...", got["Spin"], want)
	}
	if _, failed := got["EnvLog"]; failed || strings.Join(e.runLines(), " ") != "EnvLog_hello_00-4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("EnvLog: failure %q, runs %q", got["EnvLog"], e.runLines())
	}
}

package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/resqued/resqued/pkg/runner"
)

// TestWorkerConfig_Limits: the limit flags and the handlers config reach
// the worker, merged field by field.
func TestWorkerConfig_Limits(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "handlers.yml")
	if err := os.WriteFile(conf, []byte("classes:\n  Resize:\n    memory: 1G\n    timeout: 90s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := runWorkerConfig(t, "--queues", "q", "--memory-limit", "512M", "--cpu-limit", "30s",
		"--max-output", "100M", "--max-procs", "8", "--handlers-config", conf)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := cfg.Classes["Resize"]
	if !ok || c.Limits == nil || c.Timeout != 90*time.Second {
		t.Fatalf("class Resize: %+v", c)
	}
	if got, want := *c.Limits, (runner.Limits{Memory: 1 << 30, CPU: 30 * time.Second, Output: 100 << 20, Procs: 8}); got != want {
		t.Errorf("Resize limits %v, want %v", got, want)
	}
}

// TestWorkerConfig_LimitsRefused: each bad value is a usage error in the
// user's words, with a hint.
func TestWorkerConfig_LimitsRefused(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "handlers.yml")
	if err := os.WriteFile(conf, []byte("classes:\n  Resize:\n    memroy: 1G\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	qconf := filepath.Join(dir, "queues.yml")
	if err := os.WriteFile(qconf, []byte("queues:\n  \"*\":\n    concurrency: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--handlers-config", qconf}, `handlers config queues.yml line 2: queue *: a limit is set on a queue by its name, not a pattern (*, !x)`},
		{[]string{"--memory-limit", "5X"}, `--memory-limit "5X": want a size such as 512M or 2G`},
		{[]string{"--memory-limit", "-1G"}, `--memory-limit "-1G": must not be negative (0 means no limit)`},
		{[]string{"--max-output", "lots"}, `--max-output "lots": want a size such as 512M or 2G`},
		{[]string{"--cpu-limit", "soon"}, `--cpu-limit "soon": want a duration such as 30s, 2m or 1h30m`},
		{[]string{"--max-procs", "-3"}, `--max-procs -3: must not be negative (0 means no limit)`},
		{[]string{"--handlers-config", conf}, `handlers config handlers.yml line 3: class Resize: unknown field "memroy" (want memory, cpu, timeout, max_output, procs, env, concurrency, concurrency_key, rate, rate_key, unique)`},
		{[]string{"--handlers-config", filepath.Join(dir, "none.yml")}, "read handlers config: open " + filepath.Join(dir, "none.yml") + ": no such file or directory"},
	} {
		_, err := runWorkerConfig(t, append([]string{"--queues", "q"}, tc.args...)...)
		var ue *usageError
		if !errors.As(err, &ue) || ue.msg != tc.want || ue.hint == "" {
			t.Errorf("workerConfig(%q) = %v, want usage error %q with a hint", tc.args, err, tc.want)
		}
	}
}

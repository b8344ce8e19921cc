package e2e

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resqued/resqued/pkg/queue"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/cli")

// TestCLI_Golden: the operator commands' output, human and --json, on the
// seeded state, against testdata/cli/*.golden (go test -run Golden
// ./e2e/ -update rewrites them; review the diff).
func TestCLI_Golden(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t)
	// A delayed job at a fixed time, as resque-scheduler stores it.
	item := `{"class":"Report","args":["weekly"],"queue":"reports"}`
	srv.Do(t, "RPUSH", queue.DelayedKey(ns, 1795807800), item)
	srv.Do(t, "ZADD", queue.DelayedScheduleKey(ns), 1795807800, 1795807800)
	srv.Do(t, "SADD", queue.TimestampsKey(ns, item), "delayed:1795807800")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"stats", []string{"stats"}},
		{"stats.json", []string{"stats", "--json"}},
		{"queues", []string{"queues"}},
		{"queues.json", []string{"queues", "--json"}},
		{"queue-list", []string{"queue", "list"}},
		{"queue-list.json", []string{"queue", "list", "--json"}},
		{"workers", []string{"workers"}},
		{"workers.json", []string{"workers", "--json"}},
		{"failed-list", []string{"failed", "list"}},
		{"failed-list.json", []string{"failed", "list", "--json"}},
		{"failed-list-queue", []string{"failed", "list", "--queue", "images"}},
		{"delayed-list", []string{"delayed", "list"}},
		{"delayed-list.json", []string{"delayed", "list", "--json"}},
	} {
		got := mustCLI(t, srv, tc.args...) + "\n"
		path := filepath.Join("..", "testdata", "cli", tc.name+".golden")
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run with -update to create it)", tc.name, err)
		}
		if got != string(want) {
			t.Errorf("resqued %s: output differs from %s\n--- got\n%s--- want\n%s", strings.Join(tc.args, " "), path, got, want)
		}
	}
}

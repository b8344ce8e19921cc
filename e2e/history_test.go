package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/historytest"
	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// TestHistory_FromDaemon runs the real daemon (COUNT=2: a supervisor and
// two worker processes) with history on, as it is by default, over jobs
// that pass and fail on two queues. The minutes it wrote hold every run,
// per queue and per class; its queue sampler wrote a sample; and each
// worker's strip is there once the daemon has stopped (its last flush).
// With --history=false the same run writes no history key.
func TestHistory_FromDaemon(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("history=%v", on), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			dir := t.TempDir()
			runs := filepath.Join(t.TempDir(), "runs")
			handler(t, dir, "Ok", `cat >/dev/null; echo ok >> `+runs)
			handler(t, dir, "Bad", `cat >/dev/null; echo bad >> `+runs+`; exit 1`)
			for i := 0; i < 18; i++ {
				class, q := "Ok", "a"
				if i%3 == 0 {
					class = "Bad"
				}
				if i%2 == 0 {
					q = "b"
				}
				push(t, srv, q, fmt.Sprintf(`{"class":%q,"args":[%d]}`, class, i))
			}
			begin := time.Now()
			d := startEnv(t, srv, dir, []string{"COUNT=2"}, "--queues", "a,b", fmt.Sprintf("--history=%v", on))
			redistest.Eventually(t, 60*time.Second, func() bool { return getInt(t, srv, queue.StatKey(ns, "processed")) == 18 }, "the 18 jobs were not all processed")
			d.signal(syscall.SIGQUIT)
			if err := d.wait(30 * time.Second); err != nil {
				t.Fatalf("resqued exit: %v", err)
			}
			if b, _ := os.ReadFile(runs); strings.Count(string(b), "\n") != 18 {
				t.Fatalf("the handlers ran %d times, want 18", strings.Count(string(b), "\n"))
			}
			q := queue.New(srv.Pool(t), ns)
			ctx := context.Background()
			end := time.Now()
			if !on {
				keys, _ := srv.Do(t, "KEYS", queue.HistoryPrefix(ns)+"*").([]interface{})
				if len(keys) != 0 {
					t.Fatalf("--history=false wrote %d history keys", len(keys))
				}
				return
			}
			mins, err := q.ReadHistory(ctx, queue.Minute, begin, end)
			if err != nil {
				t.Fatal(err)
			}
			cms, err := q.ReadHistory(ctx, queue.MinuteClasses, begin, end)
			if err != nil {
				t.Fatal(err)
			}
			historytest.CheckTotals(t, []historytest.Total{
				{Slots: mins, Scope: queue.HistoryScope{Kind: queue.ScopeAll}, Processed: 18, Failed: 6},
				{Slots: mins, Scope: queue.HistoryScope{Kind: queue.ScopeQueue, Name: "a"}, Processed: 9, Failed: 3},
				{Slots: mins, Scope: queue.HistoryScope{Kind: queue.ScopeQueue, Name: "b"}, Processed: 9, Failed: 3},
				{Slots: cms, Scope: queue.HistoryScope{Kind: queue.ScopeClass, Name: "Ok"}, Processed: 12},
				{Slots: cms, Scope: queue.HistoryScope{Kind: queue.ScopeClass, Name: "Bad"}, Processed: 6, Failed: 6},
			})
			sampled := false
			for _, m := range mins {
				if _, ok := m.Size["a"]; ok {
					sampled = true
				}
			}
			if !sampled {
				t.Error("no queue sample of a: the daemon's sampler wrote none")
			}
			ws, err := q.ReadHistory(ctx, queue.WorkerMinute, begin, end)
			if err != nil {
				t.Fatal(err)
			}
			strips := map[string]bool{}
			for _, m := range ws {
				for id, s := range m.Workers {
					if strings.Trim(s, "-") != "" {
						strips[id] = true
					}
				}
			}
			if len(strips) != 2 {
				t.Errorf("strips of %d workers, want the 2 (%v)", len(strips), strips)
			}
		})
	}
}

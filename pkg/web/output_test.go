package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/pkg/queue"
)

// TestKeptOutput: the failed page shows a failure's kept output, found
// from its payload (failure1's has no id), and the status page a tracked
// job's; both escaped.
func TestKeptOutput(t *testing.T) {
	e := start(t, "")
	q := queue.New(e.pool, ns)
	opt := queue.OutputOptions{TTL: time.Hour}
	for _, o := range []queue.Output{
		{ID: queue.OutputID([]byte(`{"class":"Mailer","args":[1]}`)), Class: "Mailer", Outcome: "Resque::DirtyExit", At: time.Now(),
			Stdout: []string{"mailer said <hi>"}, Stderr: []string{"mailer complained"}},
		{ID: "tok123", Class: "T", Outcome: "ok", At: time.Now(), Stdout: []string{"tracked <out>"}},
	} {
		if err := q.KeepOutput(context.Background(), o, opt); err != nil {
			t.Fatal(err)
		}
	}
	body := mustGet(t, e, "/failed", "kept output", "mailer said &lt;hi&gt;", "mailer complained")
	noScript(t, "/failed", body)
	if strings.Count(body, "kept output (") != 1 {
		t.Errorf("kept output shown for %d failures, want only Mailer's", strings.Count(body, "kept output ("))
	}
	mustGet(t, e, "/status?token=tok123", "Kept output", "tracked &lt;out&gt;")
}

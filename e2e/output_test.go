package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/redistest"
)

// TestKeepOutput: with --keep-output, a failing job's stdout and stderr
// are printed by resqued output; a job without an id (a Ruby-style
// payload) is found from its failure record's output_id; an unknown id
// exits 3 saying why, a malformed one 2.
func TestKeepOutput(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Noisy", `echo "to stdout <b>"; echo "to stderr" >&2; exit 3`)
	handler(t, dir, "Quiet", `exit 4`)
	handler(t, dir, "Fine", `echo "all good"`)
	id, stderr, code := cli(t, srv, "enqueue", "--queue", "o", "Noisy", "1")
	if code != 0 {
		t.Fatalf("enqueue: exit %d: %s", code, stderr)
	}
	push(t, srv, "o", `{"class":"Noisy","args":["ruby"]}`)
	push(t, srv, "o", `{"class":"Quiet","args":[],"id":"quiet1"}`)
	push(t, srv, "o", `{"class":"Fine","args":[],"id":"fine1"}`)
	start(t, srv, dir, "--queues", "o", "--keep-output", "1h")
	waitProcessed(t, srv, 4)
	redistest.Eventually(t, 20*time.Second, func() bool { return len(failures(t, srv)) == 3 }, "failures not recorded")

	out, stderr, code := cli(t, srv, "output", id)
	if code != 0 {
		t.Fatalf("output %s: exit %d: %s", id, code, stderr)
	}
	so, se := strings.Index(out, "--- stdout"), strings.Index(out, "--- stderr")
	if so < 0 || se < so || !strings.Contains(out[so:se], "to stdout <b>") || !strings.Contains(out[se:], "to stderr") ||
		!strings.Contains(out, "Noisy") || !strings.Contains(out, "status 3") {
		t.Errorf("output %s:\n%s\nwant the job, its error, stdout then stderr", id, out)
	}
	if out, _, _ := cli(t, srv, "output", "--stream", "stderr", id); out != "to stderr" {
		t.Errorf("output --stream stderr = %q, want the raw line", out)
	}
	if out, _, _ := cli(t, srv, "output", "fine1"); !strings.Contains(out, "all good") || !strings.Contains(out, " ok ") {
		t.Errorf("a successful job's output = %q", out)
	}

	// The Ruby-style job, from its failure record.
	var rows []struct {
		Payload  json.RawMessage `json:"payload"`
		OutputID string          `json:"output_id"`
	}
	fl, _, _ := cli(t, srv, "failed", "list", "--json")
	mustJSON(t, fl, &rows)
	var rubyID string
	for _, r := range rows {
		if strings.Contains(string(r.Payload), `"ruby"`) {
			rubyID = r.OutputID
		}
	}
	if len(rubyID) != 40 {
		t.Fatalf("failed list --json gives the id-less job output_id %q, want a 40-hex hash:\n%s", rubyID, fl)
	}
	if out, stderr, code := cli(t, srv, "output", "--stream", "stdout", rubyID); code != 0 || out != "to stdout <b>" {
		t.Errorf("output of the id-less job: exit %d, %q, %s", code, out, stderr)
	}

	// Nothing printed, nothing kept; a bad id is a usage error.
	if _, stderr, code := cli(t, srv, "output", "quiet1"); code != 3 || !strings.Contains(stderr, "no output kept for job quiet1") || !strings.Contains(stderr, "--keep-output") {
		t.Errorf("output of a job that printed nothing: exit %d, %q; want 3 and why", code, stderr)
	}
	if _, stderr, code := cli(t, srv, "output", "a b"); code != 2 {
		t.Errorf("output with a malformed id: exit %d, %q; want 2", code, stderr)
	}
	if _, stderr, code := cli(t, srv, "--handlers", dir, "--queues", "o", "--keep-output", "7x"); code != 2 || !strings.Contains(stderr, "--keep-output") {
		t.Errorf("--keep-output 7x: exit %d, %q; want 2 naming the flag", code, stderr)
	}
}

// TestKeepOutput_FailuresOnly: with --keep-output-on-success=false a
// successful job's output is not kept, a failed one's is.
func TestKeepOutput_FailuresOnly(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Fine", `echo "all good"; echo "note" >&2`)
	handler(t, dir, "Bad", `echo "broken"; exit 1`)
	push(t, srv, "o", `{"class":"Fine","args":[],"id":"fine1"}`)
	push(t, srv, "o", `{"class":"Bad","args":[],"id":"bad1"}`)
	start(t, srv, dir, "--queues", "o", "--keep-output", "30m", "--keep-output-on-success=false")
	waitProcessed(t, srv, 2)
	redistest.Eventually(t, 20*time.Second, func() bool { return len(failures(t, srv)) == 1 }, "failure not recorded")
	if out, stderr, code := cli(t, srv, "output", "--stream", "stdout", "bad1"); code != 0 || out != "broken" {
		t.Errorf("failed job's output: exit %d, %q, %s", code, out, stderr)
	}
	if _, stderr, code := cli(t, srv, "output", "fine1"); code != 3 {
		t.Errorf("successful job's output: exit %d, %s; want 3, nothing kept", code, stderr)
	}
}

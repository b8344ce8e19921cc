package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

// TestRunner_ResultFD: a handler's result, progress and failure detail
// travel on fd 3; malformed lines are ignored and the job is unaffected.
func TestRunner_ResultFD(t *testing.T) {
	dir := t.TempDir()
	script := `#!/bin/sh
cat >/dev/null
echo '{"progress":0.25,"message":"a quarter"}' >&3
echo 'not json' >&3
echo '[1,2]' >&3
echo '{"unknown":true}' >&3
echo '{"progress":"nope"}' >&3
printf '{"progress":1}\n' >&$RESQUE_RESULT_FD
echo '{"result":{"ok":1}}' >&3
echo '{"result":{"ok":2,"list":[1,2]}}' >&3
echo '{"exception":"ImageError","error":"cannot decode","backtrace":["resize.py:10",42]}' >&3
exit 4
`
	if err := os.WriteFile(filepath.Join(dir, "Rich"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	var mu sync.Mutex
	logger := hclog.New(&hclog.LoggerOptions{Output: writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), Level: hclog.Warn})
	r, err := New(Config{Dir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	var got []Progress
	res, err := r.Run(context.Background(), Job{Class: "Rich", Logger: logger, OnProgress: func(p Progress) { got = append(got, p) }})
	if ee, ok := err.(*ExitError); !ok || ee.Code != 4 {
		t.Fatalf("err = %v, want exit 4", err)
	}
	if diff := cmp.Diff([]Progress{{0.25, "a quarter"}, {1, ""}}, got); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if string(res.Report.Result) != `{"ok":2,"list":[1,2]}` {
		t.Errorf("result = %s", res.Report.Result)
	}
	want := &FailureDetail{Exception: "ImageError", Error: "cannot decode", Backtrace: []string{"resize.py:10", "42"}}
	if diff := cmp.Diff(want, res.Report.Failure); diff != "" {
		t.Errorf("failure (-want +got):\n%s", diff)
	}
	mu.Lock()
	warnings := strings.Count(buf.String(), "result fd:")
	mu.Unlock()
	if warnings != 4 {
		t.Errorf("%d warnings for the 4 bad lines:\n%s", warnings, buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

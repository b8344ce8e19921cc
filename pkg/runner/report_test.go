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

// A stream of progress and an over-long line never crowd out the result.
func TestRunner_ResultFDLimits(t *testing.T) {
	dir := t.TempDir()
	script := `#!/bin/sh
i=0
while [ $i -lt 20000 ]; do echo '{"progress":0.5,"message":"padding padding padding padding"}'; i=$((i+1)); done >&3
head -c 200000 /dev/zero | tr '\0' x >&3
echo >&3
echo '{"result":"kept"}' >&3
`
	if err := os.WriteFile(filepath.Join(dir, "Chatty"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	res, err := r.Run(context.Background(), Job{Class: "Chatty", OnProgress: func(Progress) { n++ }})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Report.Result) != `"kept"` || n != 20000 {
		t.Errorf("result %s after %d progress lines", res.Report.Result, n)
	}
}

func TestRunner_Inventory(t *testing.T) {
	root := t.TempDir()
	dir, outside := filepath.Join(root, "h"), filepath.Join(root, "out")
	for _, d := range []string{dir, outside, filepath.Join(dir, "real"), filepath.Join(dir, ".src")} {
		os.MkdirAll(d, 0o755)
	}
	exe := func(p string) { os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755) }
	exe(filepath.Join(dir, "real", "Job.sh"))
	exe(filepath.Join(outside, "Esc"))
	exe(filepath.Join(dir, ".src", "main.go"))
	os.Symlink("real", filepath.Join(dir, "Linked"))
	os.Symlink(outside, filepath.Join(dir, "Away"))
	os.Symlink("..", filepath.Join(dir, "real", "Loop")) // a loop back up
	r, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := r.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range inv {
		got[e.Path] = e.Class + "|" + e.Problem
	}
	want := map[string]string{
		"real/Job.sh":   "real::Job|",
		"Linked/Job.sh": "Linked::Job|",
		"Away":          "|directory symlink points outside the handlers directory",
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: got %q, want %q", p, got[p], w)
		}
	}
	if len(inv) != len(want) {
		t.Errorf("inventory = %v", got)
	}
	classes, _ := r.Classes()
	if strings.Join(classes, ",") != `Linked::Job,Linked\Job,real::Job,real\Job` {
		t.Errorf("classes = %v", classes)
	}
}

package runner

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRun_StdoutTailAndJobEnv: with StdoutTail set, the last stdout lines
// within the budget come back in the Result (the oldest dropped), and a
// job's Env reaches its handler without overriding RESQUE_* variables.
func TestRun_StdoutTailAndJobEnv(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{StdoutTail: 16})
	writeScript(t, r.Dir(), "Talk", "#!/bin/sh\necho first line\necho \"trace=$TRACEPARENT class=$RESQUE_CLASS\"\necho oops >&2\n")
	res, err := r.Run(context.Background(), Job{Class: "Talk", Env: []string{"TRACEPARENT=t1", "RESQUE_CLASS=Forged"}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// "trace=t1 class=Talk" is 19 bytes, over the 16-byte budget: its
	// last 15 bytes are kept, and "first line" is dropped.
	if diff := cmp.Diff([]string{"e=t1 class=Talk"}, res.StdoutTail); diff != "" {
		t.Errorf("StdoutTail (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"oops"}, res.StderrTail); diff != "" {
		t.Errorf("StderrTail (-want +got):\n%s", diff)
	}

	off := newTestRunner(t, Config{})
	writeScript(t, off.Dir(), "Talk", "#!/bin/sh\necho hello\n")
	res, err = off.Run(context.Background(), Job{Class: "Talk"})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.StdoutTail != nil {
		t.Errorf("StdoutTail without Config.StdoutTail = %q, want none kept", res.StdoutTail)
	}
}

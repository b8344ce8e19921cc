package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// TestKeepOutput: a job's output is stored under its output id with the
// expiry asked for and read back whole; a second run replaces it; the
// oldest beyond MaxJobs are deleted, key and index entry; a job with none
// is ErrNoOutput.
func TestKeepOutput(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	at := time.Now().Truncate(time.Millisecond)
	o := queue.Output{ID: "j1", Class: "C", Queue: "q", Worker: "h:1:q", At: at, Outcome: "Resqued::HandlerFailed",
		Error: "exit 3", Stdout: []string{"out <1>", "out 2"}, Stderr: []string{"err \x1b"}}
	opt := queue.OutputOptions{TTL: time.Hour, MaxJobs: 3}
	if err := c.KeepOutput(ctx, o, opt); err != nil {
		t.Fatal(err)
	}
	got, err := c.Output(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "j1" || got.Class != "C" || !got.At.Equal(at) || got.Outcome != o.Outcome || got.Error != o.Error ||
		strings.Join(got.Stdout, "|") != "out <1>|out 2" || strings.Join(got.Stderr, "|") != "err \x1b" {
		t.Errorf("read back %+v, want %+v", got, o)
	}
	if ttl, _ := redis.Int64(srv.Do(t, "PTTL", queue.OutputKey(ns, "j1")), nil); ttl <= 0 || ttl > time.Hour.Milliseconds() {
		t.Errorf("PTTL = %d ms, want within the hour asked for", ttl)
	}
	o.Stdout = []string{"second run"}
	if err := c.KeepOutput(ctx, o, opt); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Output(ctx, "j1"); got == nil || strings.Join(got.Stdout, "") != "second run" {
		t.Errorf("second run's output not kept: %+v", got)
	}
	if _, err := c.Output(ctx, "nope"); !errors.Is(err, queue.ErrNoOutput) {
		t.Errorf("Output(nope) = %v, want ErrNoOutput", err)
	}
	// The cap: 5 more outputs, 3 kept, the newest.
	for i := 2; i <= 6; i++ {
		o := queue.Output{ID: fmt.Sprintf("j%d", i), At: at.Add(time.Duration(i) * time.Millisecond), Stdout: []string{"x"}}
		if err := c.KeepOutput(ctx, o, opt); err != nil {
			t.Fatal(err)
		}
	}
	outs, err := c.Outputs(ctx, []string{"j1", "j2", "j3", "j4", "j5", "j6"})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 3 || outs["j4"] == nil || outs["j5"] == nil || outs["j6"] == nil {
		t.Errorf("kept %v, want j4, j5 and j6 only", outs)
	}
	if ids, _ := redis.Strings(srv.Do(t, "ZRANGE", queue.OutputIndexKey(ns), 0, -1), nil); strings.Join(ids, " ") != "j4 j5 j6" {
		t.Errorf("index = %q, want j4 j5 j6", ids)
	}
	if n, _ := redis.Int(srv.Do(t, "EXISTS", queue.OutputKey(ns, "j1"), queue.OutputKey(ns, "j3")), nil); n != 0 {
		t.Errorf("%d trimmed output keys left", n)
	}
	// Expiry: an output kept for 1 ms is gone, and its index entry is
	// dropped by the next write.
	short := queue.Output{ID: "brief", At: time.Now(), Stdout: []string{"x"}}
	if err := c.KeepOutput(ctx, short, queue.OutputOptions{TTL: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, 10*time.Second, func() bool {
		_, err := c.Output(ctx, "brief")
		return errors.Is(err, queue.ErrNoOutput)
	}, "an output kept for 1 ms never expired")
	for _, bad := range []string{"", "a b", strings.Repeat("x", 257)} {
		if err := c.KeepOutput(ctx, queue.Output{ID: bad}, opt); err == nil {
			t.Errorf("KeepOutput with id %q accepted", bad)
		}
	}
}

// TestOutputID: the payload's string id, else the payload's SHA-1, the
// same for the same bytes.
func TestOutputID(t *testing.T) {
	if got := queue.OutputID([]byte(`{"class":"A","args":[],"id":"abc"}`)); got != "abc" {
		t.Errorf("with id: %q", got)
	}
	ruby := []byte(`{"class":"A","args":[1]}`)
	a, b := queue.OutputID(ruby), queue.OutputID([]byte(string(ruby)))
	if a != b || len(a) != 40 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("without id: %q, %q; want the same 40 hex digits", a, b)
	}
	if queue.OutputID([]byte(`{"class":"A","args":[2]}`)) == a {
		t.Error("two payloads, one output id")
	}
	if got := queue.OutputID([]byte(`{"class":"A","args":[],"id":7}`)); len(got) != 40 {
		t.Errorf("numeric id: %q, want the payload's hash", got)
	}
}

// TestOutputID_FromFailure: the output id of a Ruby-style payload is
// found again from its failure record's payload, whitespace and all.
func TestOutputID_FromFailure(t *testing.T) {
	payload := []byte(`{"class": "A", "args": [1, "x y"]}`)
	f := queue.NewFailure(time.Now(), payload, "E", "boom", nil, "h:1:q", "q")
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var back queue.Failure
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got, want := queue.OutputID(back.Payload), queue.OutputID(payload); got != want {
		t.Errorf("output id from the failure %s = %s, from the payload %s", back.Payload, got, want)
	}
}

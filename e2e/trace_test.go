package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

const (
	traceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceParent = "00-" + traceID + "-00f067aa0ba902b7-01"
)

// TestTrace_Handler: a payload's top-level "traceparent" and
// "tracestate", as OpenTelemetry's Ruby Resque instrumentation writes
// them, reach the handler as TRACEPARENT (a child span: same trace id and
// flags, a new span id) and TRACESTATE; an invalid traceparent is not
// passed and logged as a warning; JSON log lines carry trace_id. A
// persistent handler gets them on its job line.
func TestTrace_Handler(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	seen := filepath.Join(t.TempDir(), "seen")
	// Each run appends: its args, then TRACEPARENT|TRACESTATE.
	handler(t, dir, "Traced", `echo "$(cat) $TRACEPARENT|$TRACESTATE" >> "`+seen+`"`)
	lines := filepath.Join(t.TempDir(), "lines")
	handler(t, dir, "Pers.persistent.sh", `while IFS= read -r line; do
  printf '%s\n' "$line" >> "`+lines+`"
  echo '{"done":"ok"}' >&3
done`)
	push(t, srv, "t", `{"class":"Traced","args":["ok"],"traceparent":"`+traceParent+`","tracestate":"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}`)
	push(t, srv, "t", `{"class":"Traced","args":["bad"],"traceparent":"00-`+traceID+`-0000000000000000-01","tracestate":"rojo=1"}`)
	push(t, srv, "t", `{"class":"Traced","args":["badstate"],"traceparent":"`+traceParent+`","tracestate":"Not A State"}`)
	push(t, srv, "t", `{"class":"Traced","args":["none"]}`)
	push(t, srv, "t", `{"class":"Pers","args":[],"traceparent":"`+traceParent+`"}`)
	d := startArgs(t, srv, dir, nil, "--queues", "t", "--log-format", "json", "--log-level", "info")
	waitProcessed(t, srv, 5)

	b, _ := os.ReadFile(seen)
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		args, env, _ := strings.Cut(l, " ")
		got[args] = env
	}
	parent, state, _ := strings.Cut(got[`["ok"]`], "|")
	checkChild(t, "ok", parent)
	if state != "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" {
		t.Errorf("TRACESTATE = %q, want the payload's", state)
	}
	if g := got[`["bad"]`]; g != "|" {
		t.Errorf("invalid traceparent: handler saw %q, want neither TRACEPARENT nor TRACESTATE", g)
	}
	parent, state, _ = strings.Cut(got[`["badstate"]`], "|")
	checkChild(t, "badstate", parent)
	if state != "" {
		t.Errorf("invalid tracestate passed on as %q", state)
	}
	if g := got[`["none"]`]; g != "|" {
		t.Errorf("no trace context: handler saw %q", g)
	}
	pl, _ := os.ReadFile(lines)
	var line struct{ Traceparent string }
	if err := json.Unmarshal(pl, &line); err != nil {
		t.Fatalf("persistent job line %q: %v", pl, err)
	}
	checkChild(t, "persistent", line.Traceparent)

	// The daemon's JSON log: the job's lines carry trace_id, the invalid
	// ones a warning each.
	var traced, warnedParent, warnedState bool
	for _, l := range strings.Split(d.out.String(), "\n") {
		var m map[string]interface{}
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if m["@message"] == "job started" && m["trace_id"] == traceID {
			traced = true
		}
		if msg, _ := m["@message"].(string); m["@level"] == "warn" {
			warnedParent = warnedParent || strings.HasPrefix(msg, "traceparent ignored") && strings.Contains(m["error"].(string), "parent-id is all zeros")
			warnedState = warnedState || strings.HasPrefix(msg, "tracestate ignored")
		}
	}
	if !traced || !warnedParent || !warnedState {
		t.Errorf("log: trace_id on job lines %v, warning for the invalid traceparent %v, for the invalid tracestate %v; log:\n%s",
			traced, warnedParent, warnedState, d.out.String())
	}
}

// checkChild checks that tp is a child of traceParent: same trace id and
// flags, a different 16-hex span id.
func checkChild(t *testing.T, what, tp string) {
	t.Helper()
	f := strings.Split(tp, "-")
	if len(f) != 4 || f[0] != "00" || f[1] != traceID || f[3] != "01" || len(f[2]) != 16 || f[2] == "00f067aa0ba902b7" || strings.Trim(f[2], "0123456789abcdef") != "" {
		t.Errorf("%s: TRACEPARENT = %q, want 00-%s-<a new 16-hex span id>-01", what, tp, traceID)
	}
}

// TestTrace_Enqueue: resqued enqueue puts its own TRACEPARENT and
// TRACESTATE into the payload; an invalid one is left out with a warning
// and the job is enqueued regardless; without one the payload has no
// trace keys.
func TestTrace_Enqueue(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	payload := func(env ...string) (map[string]interface{}, string) {
		t.Helper()
		id, stderr, code := cliEnv(t, srv, env, "enqueue", "--queue", "e", "Job", "1")
		if code != 0 {
			t.Fatalf("enqueue with %q: exit %d: %s", env, code, stderr)
		}
		b, err := redis.Bytes(srv.Do(t, "LPOP", queue.QueueKey(ns, "e")), nil)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]interface{}
		if err := json.Unmarshal(b, &m); err != nil || m["id"] != id {
			t.Fatalf("payload %s: %v", b, err)
		}
		return m, stderr
	}
	m, _ := payload("TRACEPARENT="+traceParent, "TRACESTATE=rojo=1")
	if m["traceparent"] != traceParent || m["tracestate"] != "rojo=1" {
		t.Errorf("payload %v, want traceparent %s and tracestate rojo=1", m, traceParent)
	}
	m, stderr := payload("TRACEPARENT=00-xyz", "TRACESTATE=rojo=1")
	if _, ok := m["traceparent"]; ok || m["tracestate"] != nil {
		t.Errorf("invalid TRACEPARENT: payload %v has trace keys", m)
	}
	if !strings.Contains(stderr, "warning: TRACEPARENT not put in the payload") {
		t.Errorf("invalid TRACEPARENT: stderr %q, want a warning", stderr)
	}
	m, _ = payload()
	if len(m) != 3 {
		t.Errorf("no TRACEPARENT: payload %v, want class, args and id only", m)
	}
}

package worker_test

import (
	"testing"
	"time"
)

// TestWorker_OnRegistered: the worker says it is ready once, and only
// after its id is registered in Redis, so the daemon's "ready" line is
// never early.
func TestWorker_OnRegistered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.config(t, 4711)
	type call struct {
		id         string
		registered bool
	}
	calls := make(chan call, 2)
	cfg.OnRegistered = func(id string) { calls <- call{id, e.registered(id)} }
	r := start(t, cfg)
	select {
	case c := <-calls:
		if c.id != r.w.ID() || !c.registered {
			t.Errorf("OnRegistered(%q) with registered=%v; want %q, registered", c.id, c.registered, r.w.ID())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnRegistered not called within 10s")
	}
	r.w.Shutdown()
	if err := r.wait(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 0 {
		t.Errorf("OnRegistered called %d more times", len(calls))
	}
}

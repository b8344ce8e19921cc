package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/historytest"
	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/queue"
)

// TestWorker_History drains a queue of jobs that pass and fail with
// history on: once the worker has stopped (its last flush), the minute
// holds each class's runs, the failures among them, the queue's, and the
// worker's strip.
func TestWorker_History(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.handler(t, "Fail", `echo "Fail $(cat)" >> "$RUNS"; exit 1`)
	// Nap keeps the worker busy most of its run, so its strip's slot is
	// busy (a slot shows the state it held longest).
	e.handler(t, "Nap", `echo "Nap $(cat)" >> "$RUNS"; sleep 0.7`)
	ctx := context.Background()
	for i := 0; i < 8; i++ {
		class := "Log"
		switch {
		case i%3 == 0:
			class = "Fail"
		case i < 3:
			class = "Nap"
		}
		if err := e.q.Enqueue(ctx, "q", []byte(`{"class":"`+class+`","args":[`+string(rune('0'+i))+`]}`), queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	begin := time.Now()
	cfg := e.config(t, 4242)
	cfg.Interval = -1 // drain, then stop
	cfg.History = true
	r := start(t, cfg)
	if err := r.wait(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	runs := e.runLines()
	if len(runs) != 8 {
		t.Fatalf("handlers ran %d times, want 8: %q", len(runs), runs)
	}
	slots, err := e.q.ReadHistory(ctx, queue.Minute, begin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	classes, err := e.q.ReadHistory(ctx, queue.MinuteClasses, begin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	totals := []historytest.Total{
		{Slots: slots, Scope: queue.HistoryScope{Kind: queue.ScopeAll}, Processed: 8, Failed: 3},
		{Slots: slots, Scope: queue.HistoryScope{Kind: queue.ScopeQueue, Name: "q"}, Processed: 8, Failed: 3},
		{Slots: classes, Scope: queue.HistoryScope{Kind: queue.ScopeClass, Name: "Log"}, Processed: 3},
		{Slots: classes, Scope: queue.HistoryScope{Kind: queue.ScopeClass, Name: "Nap"}, Processed: 2},
		{Slots: classes, Scope: queue.HistoryScope{Kind: queue.ScopeClass, Name: "Fail"}, Processed: 3, Failed: 3},
	}
	historytest.CheckTotals(t, totals)
	for _, tc := range totals {
		if tc.Scope.Kind != queue.ScopeClass {
			continue
		}
		var n int64
		for _, b := range historytest.Sum(tc.Slots, tc.Scope).Buckets {
			n += b
		}
		if n != tc.Processed {
			t.Errorf("class %s: %d durations in the buckets, want %d", tc.Scope.Name, n, tc.Processed)
		}
	}
	cells, err := (&history.Reader{Queue: e.q}).Workers(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	strip := cells[r.w.ID()]
	var states strings.Builder
	for _, c := range strip {
		if c.State != "" {
			states.WriteString(c.State[:1])
		}
	}
	if !strings.Contains(states.String(), "b") {
		t.Errorf("worker %s, busy with Nap most of its run, has no busy slot: %q (all: %v)", r.w.ID(), states.String(), cells)
	}
}

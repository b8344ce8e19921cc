package main

import (
	"context"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/queue"
)

// historyFlag turns the dashboard's history on or off (pkg/history).
var historyFlag = &cli.BoolFlag{Name: "history", EnvVars: []string{"RESQUED_HISTORY"}, Value: true,
	Usage: "keep per-minute counts of jobs, durations, queue sizes and worker states for the dashboard's charts (docs/dashboard.md); --history=false keeps none (resqued web: samples no queue sizes)"}

// newSampler is the queue sampler of the dashboard's history
// (history.Sampler), for the daemon and resqued web.
func newSampler(q *queue.Client, log hclog.Logger) *history.Sampler {
	return history.NewSampler(history.SamplerConfig{Queue: q, Logger: log})
}

// startLoop runs a background loop (the delayed-job loop, the recurring
// schedule, the queue sampler) until the returned function is called,
// which ends its context and waits for it to return.
func startLoop(ctx context.Context, run func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); run(ctx) }()
	return func() { cancel(); wg.Wait() }
}

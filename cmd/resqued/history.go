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

// startSampler samples the queues into history once a minute for the
// fleet (history.Sampler) until the returned function is called.
func startSampler(ctx context.Context, q *queue.Client, log hclog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	s := history.NewSampler(history.SamplerConfig{Queue: q, Logger: log})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	return func() { cancel(); wg.Wait() }
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/metrics"
	"github.com/resqued/resqued/pkg/worker"
)

// metricsFlag is --metrics ADDR: serve GET /metrics and GET /healthz.
var metricsFlag = &cli.StringFlag{Name: "metrics", EnvVars: []string{"RESQUED_METRICS"},
	Usage: "serve Prometheus GET /metrics and GET /healthz on `ADDR` (e.g. 127.0.0.1:9187; loopback recommended, there is no auth); empty: off. With --count above 1 only the Redis-side metrics are served, not per-job histograms"}

// serveMetrics starts the --metrics listener, if asked for. withJobs
// (single-process mode) also sets cfg.Jobs so this process's jobs are
// timed; the supervisor of --count workers serves only the Redis-side
// collector and the health check. The returned stop shuts the server.
func serveMetrics(c *cli.Context, cfg *worker.Config, withJobs bool) (stop func(), err error) {
	addr := c.String("metrics")
	if addr == "" {
		return func() {}, nil
	}
	reg := metrics.NewRegistry()
	reg.Register(metrics.NewCollector(cfg.Queue).WithLimits(cfg.Limits), metrics.Process{})
	if withJobs {
		cfg.Jobs = metrics.NewJobs(reg)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("--metrics %s: %v", addr, err), hint: "--metrics HOST:PORT with a port nothing else listens on (or --metrics '' for none)"}
	}
	srv := &http.Server{
		Handler:           metrics.Mux(reg, cfg.Queue),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log := cfg.Logger.ResetNamed("resqued.metrics")
	log.Info("serving metrics", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/redisurl"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/worker"
)

// readyLine is what the daemon logs once its workers are registered:
// how many, on which queues, with which handlers, and the command that
// gives it work from another terminal (with a class the handlers
// directory really has).
func readyLine(workers int, queues []string, handlersDir, self, redis, namespace, class string) string {
	noun := "workers"
	if workers == 1 {
		noun = "worker"
	}
	cmd := []string{self, "enqueue"}
	if redis != "" && redis != redisurl.Default {
		cmd = append(cmd, "--redis", shellQuote(redis))
	}
	if namespace != "resque" {
		cmd = append(cmd, "--namespace", shellQuote(namespace))
	}
	if q := firstQueue(queues); q != "default" {
		cmd = append(cmd, "--queue", shellQuote(q))
	}
	cmd = append(cmd, class, "hello")
	return fmt.Sprintf("resqued is ready: %d %s on queues %s with handlers %s. From another terminal: %s",
		workers, noun, strings.Join(queues, ","), handlersDir, strings.Join(cmd, " "))
}

// firstQueue is a queue the workers take jobs from: the first plain
// name, or "default" when every spec is a pattern ("*", "a*").
func firstQueue(specs []string) string {
	for _, s := range specs {
		if !strings.ContainsAny(s, "*?[!") {
			return s
		}
	}
	return "default"
}

// exampleClass is a class the handlers directory provides, Echo when it
// has one.
func exampleClass(r *runner.Runner) string {
	classes, _ := r.Classes()
	if slices.Contains(classes, "Echo") || len(classes) == 0 {
		return "Echo"
	}
	return classes[0]
}

// sayReady logs the ready line, for a daemon with workers workers.
func sayReady(cfg worker.Config, workers int, redis string) {
	cfg.Logger.ResetNamed("resqued").Info(readyLine(workers, cfg.Queues, cfg.Runner.Dir(), os.Args[0],
		redisurl.Redacted(redis), cfg.Queue.Namespace(), exampleClass(cfg.Runner)))
}

// sayReadyWhenRegistered waits until every one of the supervisor's n
// workers is registered in Redis, then logs the ready line. It gives up
// quietly when ctx ends.
func sayReadyWhenRegistered(ctx context.Context, cfg worker.Config, n int, pids func() []int, redis string) {
	delay := 50 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
		if ps := pids(); len(ps) == n {
			ids, err := cfg.Queue.Workers(ctx)
			registered := 0
			for _, pid := range ps {
				if err == nil && slices.Contains(ids, queue.WorkerID(cfg.Hostname, pid, cfg.Queues)) {
					registered++
				}
			}
			if registered == n {
				sayReady(cfg, n, redis)
				return
			}
		}
	}
}

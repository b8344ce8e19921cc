package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/redisurl"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/status"
	"github.com/resqued/resqued/pkg/worker"
)

func runFlags() []cli.Flag {
	return append(connFlags(),
		&cli.StringFlag{Name: "handlers", EnvVars: []string{"RESQUED_HANDLERS"}, Value: "./handlers", Usage: "`DIR` holding one executable per job class"},
		&cli.StringFlag{Name: "queues", Aliases: []string{"q"}, EnvVars: []string{"QUEUES", "QUEUE"}, Usage: "queues in priority order, comma-separated; * for all, globs and !exclusions allowed"},
		&cli.StringFlag{Name: "interval", EnvVars: []string{"INTERVAL"}, Value: "5", Usage: "seconds to wait for a job before re-reading the queue list; 0 drains the queues and exits"},
		&cli.StringFlag{Name: "term-timeout", EnvVars: []string{"RESQUE_TERM_TIMEOUT"}, Value: "4", Usage: "seconds a handler has between SIGTERM and SIGKILL"},
		&cli.StringFlag{Name: "timeout", EnvVars: []string{"RESQUED_TIMEOUT"}, Value: "0", Usage: "seconds a job may run before it is stopped and failed; 0 means no limit"},
	)
}

// runAction is the daemon: resqued --handlers DIR --queues LIST.
func runAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unknown command %q", c.Args().First()), hint: "resqued --help"}
	}
	cfg, log, err := workerConfig(c)
	if err != nil {
		return err
	}
	// The title replaces argv at once, so a password in --redis is not
	// left readable in ps.
	cfg.SetTitle("Starting")
	log.Info("starting", "version", Version, "redis", redisurl.Redacted(redisURL(c)), "namespace", c.String("namespace"), "handlers", cfg.Runner.Dir())
	w, err := worker.New(cfg)
	if err != nil {
		return &usageError{msg: err.Error(), hint: "resqued --queues high,default"}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCONT)
	defer signal.Stop(sigs)
	go handleSignals(sigs, w, log)
	return w.Run(c.Context)
}

// handleSignals maps Resque's signals onto the worker (docs/operations.md).
func handleSignals(sigs <-chan os.Signal, w *worker.Worker, log hclog.Logger) {
	terminating := false
	for sig := range sigs {
		log.Debug("signal received", "signal", sig)
		switch sig {
		case syscall.SIGQUIT:
			w.Shutdown()
		case syscall.SIGTERM, syscall.SIGINT:
			if terminating {
				w.Force()
			} else {
				w.Terminate()
			}
			terminating = true
		case syscall.SIGUSR1:
			w.KillJob()
		case syscall.SIGUSR2:
			w.Pause()
		case syscall.SIGCONT:
			w.Resume()
		}
	}
}

// workerConfig reads the run flags into a worker.Config.
func workerConfig(c *cli.Context) (worker.Config, hclog.Logger, error) {
	log, err := newLogger(c)
	if err != nil {
		return worker.Config{}, nil, err
	}
	specs := splitList(c.String("queues"))
	if len(specs) == 0 {
		return worker.Config{}, nil, &usageError{msg: "no queues given", hint: "resqued --queues '*' (or QUEUES=high,low)"}
	}
	var interval, termTimeout, timeout time.Duration
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{"interval", &interval}, {"term-timeout", &termTimeout}, {"timeout", &timeout}} {
		d, err := parseSeconds(c.String(f.name))
		if err != nil || d < 0 {
			return worker.Config{}, nil, &usageError{msg: fmt.Sprintf("--%s %q: want seconds", f.name, c.String(f.name)), hint: "--" + f.name + " 5"}
		}
		*f.d = d
	}
	if interval == 0 {
		interval = -1 // INTERVAL=0: drain, then exit
	}
	if termTimeout == 0 {
		termTimeout = time.Nanosecond // zero means the 4s default; the user asked for none
	}
	run, err := runner.New(runner.Config{Dir: c.String("handlers"), Logger: log.Named("handler"), TermTimeout: termTimeout, Timeout: timeout})
	if err != nil {
		return worker.Config{}, nil, &usageError{msg: err.Error(), hint: "resqued --handlers ./handlers"}
	}
	pool, err := newPool(c)
	if err != nil {
		return worker.Config{}, nil, err
	}
	ns := c.String("namespace")
	return worker.Config{
		Queue:    queue.New(pool, ns),
		Status:   status.New(pool, ns),
		Runner:   run,
		Queues:   specs,
		Interval: interval,
		Logger:   log.Named("worker"),
		SetTitle: titleSetter(),
	}, log, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/worker"
)

func tryCommand() *cli.Command {
	return &cli.Command{
		Name:      "try",
		Usage:     "run one job's handler exactly as the daemon would, without Redis",
		ArgsUsage: "CLASS [ARG...]",
		Description: "Looks the handler up, feeds it the args on stdin with the daemon's environment and working\n" +
			"directory, streams its output, and prints the outcome, its result (fd 3) and duration.\n" +
			"The exit status is the handler's (128+N when killed by signal N).",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "handlers", EnvVars: []string{"RESQUED_HANDLERS"}, Value: "./handlers", Usage: "`DIR` holding one executable per job class"},
			&cli.StringFlag{Name: "args", Usage: "the whole args `JSON` array"},
			&cli.StringFlag{Name: "queue", Aliases: []string{"q"}, Value: "default", Usage: "queue name the handler sees in RESQUE_QUEUE"},
			&cli.StringFlag{Name: "timeout", EnvVars: []string{"RESQUED_TIMEOUT"}, Value: "0", Usage: "seconds before the handler is stopped; 0 means no limit"},
			&cli.StringFlag{Name: "term-timeout", EnvVars: []string{"RESQUE_TERM_TIMEOUT"}, Value: "4", Usage: "seconds between SIGTERM and SIGKILL"},
			&cli.BoolFlag{Name: "follow-symlinks", EnvVars: []string{"RESQUED_FOLLOW_SYMLINKS"}, Usage: "allow handler symlinks that point outside the handlers directory"},
		}, limitFlags()...),
		Action: tryAction,
	}
}

func tryAction(c *cli.Context) error {
	class := c.Args().First()
	if class == "" {
		return &usageError{msg: "try: no job class given; put it after try's flags, then the job's ARGs", hint: "resqued try Echo hello"}
	}
	if err := runner.ValidateClass(class); err != nil {
		return &usageError{msg: "try: " + err.Error(), hint: "resqued try Echo hello"}
	}
	rest := c.Args().Tail()
	if len(rest) > 0 && rest[0] == "--" { // try CLASS -- -1
		rest = rest[1:]
	}
	args, err := buildArgs(c.String("args"), rest)
	if err != nil {
		return &usageError{msg: "try: " + err.Error(), hint: `resqued try --args '[1, "two"]' MyJob`}
	}
	timeout, err1 := parseSeconds(c.String("timeout"))
	term, err2 := parseSeconds(c.String("term-timeout"))
	if err := errors.Join(err1, err2); err != nil {
		return &usageError{msg: "try: " + err.Error(), hint: "--timeout 30"}
	}
	limits, err := readLimits(c, "try: ")
	if err != nil {
		return err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "resqued", Level: hclog.Warn, Output: os.Stderr})
	r, err := runner.New(runner.Config{Dir: c.String("handlers"), Logger: log, Timeout: timeout,
		TermTimeout: max(term, time.Nanosecond), FollowSymlinks: c.Bool("follow-symlinks"),
		Limits: limits.defaults, Cgroup: limits.cgroup})
	if err != nil {
		return handlersDirError("try: ", "resqued try", c.String("handlers"), err)
	}
	// The class's own settings, as the worker applies them.
	cls := limits.config.Jobs(limits.defaults)[class]
	// Ctrl-C stops the handler the way a worker shutdown would.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	slot := r.NewSlot(runner.SlotConfig{}) // persistent handlers run as the daemon runs them
	defer slot.Close()
	running, err := slot.Start(ctx, runner.Job{
		Class: class, Queue: c.String("queue"), ID: queue.NewID(), Worker: queue.WorkerID(queue.Hostname(), os.Getpid(), []string{"try"}),
		Args: args, Logger: log, Stdout: os.Stdout, Stderr: os.Stderr,
		OnProgress: func(p runner.Progress) { fmt.Fprintf(os.Stderr, "progress: %.0f%% %s\n", p.Progress*100, p.Message) },
		Limits:     cls.Limits, Timeout: cls.Timeout, Env: cls.Env,
	})
	var res *runner.Result
	if err == nil {
		res, err = running.Wait()
	}
	return tryOutcome(class, res, err)
}

// tryOutcome prints what the daemon would record and picks the exit
// status: the handler's own, 128+N for signal N, 127 when it could not be
// found or started.
func tryOutcome(class string, res *runner.Result, err error) error {
	if err == nil {
		if res.Report.Result != nil { // a failed job's result is dropped, as the daemon does
			fmt.Printf("result: %s\n", res.Report.Result)
		}
		fmt.Fprintf(os.Stderr, "ok: %s in %s\n", class, res.Duration.Round(time.Millisecond))
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return cli.Exit("try: interrupted before the handler started", 130)
	}
	o := worker.Describe(err, res)
	code := 127
	var ee *runner.ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Signal != 0 {
			code = 128 + int(ee.Signal)
		}
		o.Error += fmt.Sprintf(" (after %s)", ee.Duration.Round(time.Millisecond))
	}
	// Exactly the failure record's exception, error and backtrace.
	fmt.Fprintf(os.Stderr, "failed: %s\n", o)
	for _, l := range o.Backtrace {
		fmt.Fprintf(os.Stderr, "  | %s\n", l)
	}
	return cli.Exit("", code)
}

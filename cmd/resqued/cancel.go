package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/worker"
)

func cancelCommand() *cli.Command {
	return &cli.Command{
		Name:  "cancel",
		Usage: "cancel a job: remove it from its queue or the delayed set, or have the worker running it stop it (from any host)",
		Description: "A running job's handler gets SIGTERM, then SIGKILL after the worker's --term-timeout, and the job is recorded as\n" +
			"failed with Resqued::Cancelled and who asked. Exit status 3: nothing to cancel (finished, idle, or unknown).",
		ArgsUsage: "ID | --worker WORKER_ID",
		Flags: append(connFlags(),
			&cli.StringFlag{Name: "worker", Usage: "cancel whatever job worker `WORKER_ID` (host:pid:queues, as resqued workers lists it) runs"},
			&cli.StringFlag{Name: "by", Usage: "who asks, as the failure records it", DefaultText: "user@host"},
			&cli.StringFlag{Name: "term-timeout", EnvVars: []string{"RESQUE_TERM_TIMEOUT"}, Value: "4", Usage: "seconds the workers give a handler between SIGTERM and SIGKILL: how long, plus 5 s, to wait for the outcome"},
		),
		Action: cancelAction,
	}
}

func cancelAction(c *cli.Context) error {
	id, wk := c.Args().First(), c.String("worker")
	hint := "resqued cancel 3f2a... (the id enqueue --track printed), or resqued cancel --worker host:pid:queues"
	switch {
	case c.NArg() > 1 || (id == "") == (wk == ""):
		return &usageError{msg: "cancel: want exactly one job ID, or --worker WORKER_ID", hint: hint}
	case id != "":
		if err := queue.ValidateJobID(id); err != nil {
			return &usageError{msg: "cancel: " + err.Error() + "; " + queue.JobIDWant, hint: hint}
		}
	case strings.TrimSpace(wk) != wk || strings.Count(wk, ":") < 2:
		return &usageError{msg: fmt.Sprintf("cancel: --worker %q: want a worker id host:pid:queues", wk), hint: "resqued workers (lists the ids)"}
	}
	term, err := parseSeconds(c.String("term-timeout"))
	if err != nil || term < 0 {
		return &usageError{msg: fmt.Sprintf("cancel: --term-timeout %q: want seconds", c.String("term-timeout")), hint: "--term-timeout 4"}
	}
	rc, err := connect(c, nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	cl := &worker.Canceller{Queue: rc.queue, Status: rc.status, Wait: term + 5*time.Second}
	by := canceller(c.String("by"))
	var res *worker.Cancelled
	if wk != "" {
		res, err = cl.CancelWorker(c.Context, wk, by)
	} else {
		res, err = cl.CancelJob(c.Context, id, by)
	}
	if errors.Is(err, worker.ErrNothingToCancel) {
		return cli.Exit(err.Error(), 3)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, res)
	if res.How == worker.CancelRequested {
		return cli.Exit("", 1)
	}
	return nil
}

// canceller is who asks, as failure records say it: --by, or
// user@host, marked as coming from resqued cancel.
func canceller(by string) string {
	if by = strings.TrimSpace(by); by == "" {
		name := os.Getenv("USER")
		if u, err := user.Current(); err == nil && u.Username != "" {
			name = u.Username
		}
		if name == "" {
			name = "unknown"
		}
		by = name + "@" + queue.Hostname()
	}
	return by + " (resqued cancel)"
}

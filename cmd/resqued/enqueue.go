package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/status"
)

func enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:      "enqueue",
		Usage:     "put a job on a queue and print its id",
		ArgsUsage: "CLASS [ARG...]",
		Description: "Each ARG is taken as JSON when it parses as JSON (42, true, {\"a\":1}) and as a string otherwise;\n" +
			"--args '[...]' gives the whole args array instead.",
		Flags: append(connFlags(),
			&cli.StringFlag{Name: "queue", Aliases: []string{"q"}, Value: "default", Usage: "queue to push to"},
			&cli.StringFlag{Name: "args", Usage: "the whole args `JSON` array"},
			&cli.BoolFlag{Name: "track", Usage: "create a php-resque status for the job; the printed id is its token"},
			&cli.BoolFlag{Name: "wait", Usage: "track the job, wait until it ends, print its result; exit 0 if it succeeded, 1 if it failed, 124 on --wait-timeout"},
			&cli.DurationFlag{Name: "wait-timeout", Value: 60 * time.Second, Usage: "how long --wait waits"},
		),
		Action: enqueueAction,
	}
}

func enqueueAction(c *cli.Context) error {
	class := c.Args().First()
	if err := runner.ValidateClass(class); err != nil {
		return &usageError{msg: fmt.Sprintf("enqueue: %v", err), hint: "resqued enqueue --queue default MyJob 42"}
	}
	args, err := buildArgs(c.String("args"), c.Args().Tail())
	if err != nil {
		return &usageError{msg: "enqueue: " + err.Error(), hint: `resqued enqueue MyJob --args '[1, "two"]'`}
	}
	q := c.String("queue")
	if err := queue.ValidateQueueName(q); err != nil {
		return &usageError{msg: "enqueue: " + err.Error(), hint: "resqued enqueue --queue default " + class}
	}
	id := queue.NewID()
	payload, err := queue.Encode(class, args, id)
	if err != nil {
		return &usageError{msg: "enqueue: " + err.Error()}
	}
	pool, err := newPool(c, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	opt := queue.EnqueueOptions{Track: c.Bool("track") || c.Bool("wait"), ID: id}
	if err := queue.New(pool, c.String("namespace")).Enqueue(c.Context, q, payload, opt); err != nil {
		return err
	}
	if c.Bool("wait") {
		return waitFor(c, status.New(pool, c.String("namespace")), id)
	}
	fmt.Fprintln(c.App.Writer, id)
	return nil
}

// waitFor polls job id's status until it ends, then prints its result
// (stdout) or error (stderr).
func waitFor(c *cli.Context, t *status.Tracker, id string) error {
	deadline := time.Now().Add(c.Duration("wait-timeout"))
	delay := 10 * time.Millisecond
	for {
		s, err := t.GetFull(c.Context, id)
		if err != nil {
			return err
		}
		switch s.Code {
		case status.Complete:
			if s.Result != nil {
				fmt.Fprintln(c.App.Writer, string(s.Result))
			}
			return nil
		case status.Failed:
			return cli.Exit(fmt.Sprintf("job %s failed: %s", id, s.Error), 1)
		}
		if time.Now().After(deadline) {
			return cli.Exit(fmt.Sprintf("job %s still %s after %s (it stays queued or running)", id, s.Code, c.Duration("wait-timeout")), 124)
		}
		time.Sleep(delay)
		delay = min(2*delay, 250*time.Millisecond)
	}
}

// buildArgs makes the args array from --args, or from positional ARGs
// (JSON when they parse, strings otherwise).
func buildArgs(whole string, positional []string) (json.RawMessage, error) {
	if whole != "" {
		if len(positional) > 0 {
			return nil, fmt.Errorf("give either --args or positional ARGs, not both")
		}
		var v []json.RawMessage
		if err := json.Unmarshal([]byte(whole), &v); err != nil {
			return nil, fmt.Errorf("--args must be a JSON array: %v", err)
		}
		return json.RawMessage(whole), nil
	}
	list := make([]json.RawMessage, 0, len(positional))
	for _, a := range positional {
		if json.Valid([]byte(a)) {
			list = append(list, json.RawMessage(a))
			continue
		}
		b, _ := json.Marshal(a)
		list = append(list, b)
	}
	b, err := json.Marshal(list)
	return b, err
}

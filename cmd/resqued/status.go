package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/status"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "print a tracked job's state: waiting, running, failed or complete",
		ArgsUsage: "TOKEN",
		Flags: append(connFlags(),
			&cli.BoolFlag{Name: "stop", Usage: "forget the status at once instead of printing it"},
			&cli.BoolFlag{Name: "json", Usage: "print the status value as JSON"},
		),
		Action: statusAction,
	}
}

func statusAction(c *cli.Context) error {
	token := c.Args().First()
	if token == "" || c.NArg() > 1 {
		return &usageError{msg: "status: want exactly one TOKEN", hint: "resqued status 3f2a... (the id enqueue --track printed)"}
	}
	pool, err := newPool(c, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	t := status.New(pool, c.String("namespace"))
	if c.Bool("stop") {
		return notTracked(t.Stop(c.Context, token))
	}
	s, err := t.Get(c.Context, token)
	if err != nil {
		return notTracked(err)
	}
	if c.Bool("json") {
		fmt.Fprintf(c.App.Writer, "{\"token\":%q,\"status\":%q,\"updated\":%d,\"started\":%d}\n", token, s.Code, s.Updated, s.Started)
		return nil
	}
	fmt.Fprintln(c.App.Writer, s.Code)
	return nil
}

// notTracked turns ErrNotTracked into exit status 3 with a plain message.
func notTracked(err error) error {
	if errors.Is(err, status.ErrNotTracked) {
		return cli.Exit("unknown token: not tracked, stopped, or expired 24 h after its job ended", 3)
	}
	return err
}

package main

import (
	"encoding/json"
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
	rc, err := connect(c, nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	t := rc.status
	if c.Bool("stop") {
		return notTracked(t.Stop(c.Context, token))
	}
	s, err := t.GetFull(c.Context, token)
	if err != nil {
		return notTracked(err)
	}
	if c.Bool("json") {
		b, _ := json.Marshal(struct {
			Token string `json:"token"`
			State string `json:"status"` // the name, over php-resque's number
			status.Status
			status.Detail
		}{token, s.Code.String(), s.Status, s.Detail})
		fmt.Fprintln(c.App.Writer, string(b))
		return nil
	}
	// The first line is the state alone, for scripts; detail follows.
	fmt.Fprintln(c.App.Writer, s.Code)
	if s.Progress != nil && !s.Code.Final() {
		fmt.Fprintf(c.App.Writer, "progress: %.0f%% %s\n", *s.Progress*100, s.Message)
	}
	if s.Code == status.Failed && s.Error != "" {
		fmt.Fprintf(c.App.Writer, "error: %s\n", s.Error)
	}
	if s.Result != nil && s.Code == status.Complete {
		fmt.Fprintf(c.App.Writer, "result: %s\n", s.Result)
	}
	return nil
}

// notTracked turns ErrNotTracked into exit status 3 with a plain message.
func notTracked(err error) error {
	if errors.Is(err, status.ErrNotTracked) {
		return cli.Exit("unknown token: not tracked, stopped, or expired 24 h after its job ended", 3)
	}
	return err
}

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// Delayed jobs (docs/scheduling.md): enqueue --in/--at, the daemon's
// --scheduler loop and delayed list.

func delayedCommand() *cli.Command {
	return &cli.Command{
		Name:  "delayed",
		Usage: "show delayed jobs (resque-scheduler's layout)",
		Subcommands: []*cli.Command{{
			Name:      "list",
			Usage:     "list delayed jobs, soonest first: time, queue, class, args",
			ArgsUsage: " ",
			Flags: append(connFlags(),
				&cli.BoolFlag{Name: "json", Usage: "print a JSON array"},
				&cli.IntFlag{Name: "limit", Usage: "show at most `N` jobs", DefaultText: "all"},
			),
			Action: delayedListAction,
		}},
	}
}

// delayedRow is one delayed job as delayed list --json prints it.
type delayedRow struct {
	At    string          `json:"at"`
	Queue string          `json:"queue"`
	Class string          `json:"class"`
	Args  json.RawMessage `json:"args"`
	ID    string          `json:"id,omitempty"`
}

func delayedListAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return &usageError{msg: "delayed list: takes no arguments", hint: "resqued delayed list --json"}
	}
	rc, err := connect(c, nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	items, err := rc.queue.ListDelayed(c.Context, c.Int("limit"))
	if err != nil {
		return err
	}
	rows := make([]delayedRow, 0, len(items))
	for _, d := range items {
		args := d.Args
		if args == nil {
			args = json.RawMessage("null")
		}
		rows = append(rows, delayedRow{At: humanTimeOf(d.At), Queue: d.Queue, Class: d.Class, Args: args, ID: d.ID})
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, rows)
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "AT\tQUEUE\tCLASS\tARGS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.At, orDash(r.Queue), orDash(r.Class), oneLine(string(r.Args)))
	}
	return tw.Flush()
}

// delayFlags are enqueue's --in and --at.
func delayFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "in", Usage: "run the job after `DELAY` (90s, 5m, or plain seconds) instead of now"},
		&cli.StringFlag{Name: "at", Usage: "run the job at `TIME` (RFC 3339, e.g. 2026-12-01T10:00:00Z) instead of now"},
	}
}

// delayTime reads --in/--at: ok is false when neither was given.
func delayTime(c *cli.Context) (at time.Time, ok bool, err error) {
	in, abs := c.String("in"), c.String("at")
	switch {
	case in != "" && abs != "":
		return time.Time{}, false, &usageError{msg: "enqueue: give --in or --at, not both", hint: "resqued enqueue --in 90s MyJob"}
	case in != "":
		d, err := parseSeconds(in)
		if err != nil || d < 0 {
			return time.Time{}, false, &usageError{msg: fmt.Sprintf("enqueue: --in %q: want a duration such as 90s or seconds", in), hint: "resqued enqueue --in 90s MyJob"}
		}
		return time.Now().Add(d), true, nil
	case abs != "":
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(abs))
		if err != nil {
			return time.Time{}, false, &usageError{msg: fmt.Sprintf("enqueue: --at %q: want RFC 3339 time", abs), hint: "resqued enqueue --at 2026-12-01T10:00:00Z MyJob"}
		}
		return t, true, nil
	}
	return time.Time{}, false, nil
}

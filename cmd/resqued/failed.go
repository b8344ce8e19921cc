package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
)

func failedCommand() *cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print a JSON array"}
	allFlag := &cli.BoolFlag{Name: "all", Usage: "every record of the failed list"}
	return &cli.Command{
		Name:  "failed",
		Usage: "list, retry and remove failed jobs, as resque-web's Failed tab does",
		Subcommands: []*cli.Command{
			{
				Name:      "list",
				Usage:     "list failure records with their index",
				ArgsUsage: " ",
				Flags: append(connFlags(), jsonFlag,
					&cli.StringFlag{Name: "queue", Aliases: []string{"q"}, Usage: "only failures from queue `Q`"},
					&cli.StringFlag{Name: "class", Usage: "only failures of job class `C`"},
					&cli.IntFlag{Name: "start", Usage: "first index to look at"},
					&cli.IntFlag{Name: "count", Usage: "look at `M` records from --start", DefaultText: "all"},
				),
				Action: failedListAction,
			},
			{
				Name:        "retry",
				Usage:       "re-enqueue a failed job as it was and mark its record retried",
				ArgsUsage:   "INDEX | --all",
				Description: "Like resque-web's retry: the record stays in the failed list with retried_at set, and its payload is pushed byte for byte to its queue.",
				Flags:       append(connFlags(), allFlag),
				Action:      failedRetryAction,
			},
			{
				Name:      "remove",
				Usage:     "delete a failure record (--all: the whole failed list)",
				ArgsUsage: "INDEX | --all",
				Flags:     append(connFlags(), allFlag),
				Action:    failedRemoveAction,
			},
			{
				Name:   "clear",
				Usage:  "delete the failed list and print how many records it held",
				Flags:  connFlags(),
				Action: failedClearAction,
			},
		},
	}
}

// failedRow is one record as failed list --json prints it.
type failedRow struct {
	Index     int             `json:"index"`
	FailedAt  string          `json:"failed_at"`
	Queue     string          `json:"queue"`
	Class     string          `json:"class"`
	Exception string          `json:"exception"`
	Error     string          `json:"error"`
	Worker    string          `json:"worker"`
	RetriedAt string          `json:"retried_at,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	// OutputID is what resqued output takes to print the job's kept
	// output (--keep-output), if any was kept.
	OutputID  string   `json:"output_id,omitempty"`
	Backtrace []string `json:"backtrace"`
	Raw       string   `json:"raw,omitempty"` // only for a record that is not JSON
}

func failedListAction(c *cli.Context) error {
	if c.NArg() > 0 || c.Int("start") < 0 || c.Int("count") < 0 {
		return &usageError{msg: "failed list: takes no arguments; --start and --count are 0 or more", hint: "resqued failed list --queue default --start 0 --count 20"}
	}
	client, done, err := adminClient(c)
	if err != nil {
		return err
	}
	defer done()
	entries, err := client.FailedRange(c.Context, c.Int("start"), c.Int("count"))
	if err != nil {
		return err
	}
	rows := []failedRow{}
	for _, e := range entries {
		if (c.IsSet("queue") && e.Queue != c.String("queue")) || (c.IsSet("class") && e.Class != c.String("class")) {
			continue
		}
		rows = append(rows, toRow(e))
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, rows)
	}
	return printFailedTable(c.App.Writer, rows)
}

// printFailedTable is failed list's human output. A record that was
// retried says so under FAILED_AT, in the dashboard's words ("retried
// TIME").
func printFailedTable(w io.Writer, rows []failedRow) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "INDEX\tFAILED_AT\tQUEUE\tCLASS\tEXCEPTION\tERROR")
	for _, r := range rows {
		at := orDash(humanTime(r.FailedAt))
		if r.RetriedAt != "" {
			at += " (retried " + oneLine(humanTime(r.RetriedAt)) + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Index, at, orDash(r.Queue), orDash(r.Class), orDash(r.Exception), oneLine(r.Error))
	}
	return tw.Flush()
}

func toRow(e queue.FailedEntry) failedRow {
	if e.Invalid {
		return failedRow{Index: e.Index, Exception: "(not a failure record)", Raw: string(e.Raw), Backtrace: []string{}}
	}
	if e.Backtrace == nil {
		e.Backtrace = []string{}
	}
	return failedRow{Index: e.Index, FailedAt: e.FailedAt, Queue: e.Queue, Class: e.Class, Exception: e.Exception,
		Error: e.Error, Worker: e.Worker, RetriedAt: e.RetriedAt, Payload: e.Payload, OutputID: queue.OutputID(e.Payload), Backtrace: e.Backtrace}
}

func failedRetryAction(c *cli.Context) error {
	index, all, err := indexOrAll(c, "retry")
	if err != nil {
		return err
	}
	client, done, err := adminClient(c)
	if err != nil {
		return err
	}
	defer done()
	if all {
		n, err := client.RequeueAllFailed(c.Context, time.Now())
		if err != nil {
			return fmt.Errorf("%w (%d retried before it)", err, n)
		}
		fmt.Fprintf(c.App.Writer, "retried %d\n", n)
		return nil
	}
	f, err := client.RequeueFailed(c.Context, index, time.Now())
	if err != nil {
		return noFailure(err, index)
	}
	fmt.Fprintf(c.App.Writer, "retried %d: %s on queue %s\n", index, orDash(queue.PayloadClass(f.Payload)), f.Queue)
	return nil
}

func failedRemoveAction(c *cli.Context) error {
	index, all, err := indexOrAll(c, "remove")
	if err != nil {
		return err
	}
	client, done, err := adminClient(c)
	if err != nil {
		return err
	}
	defer done()
	if all {
		n, err := client.ClearFailed(c.Context)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "removed %d\n", n)
		return nil
	}
	if err := client.RemoveFailed(c.Context, index); err != nil {
		return noFailure(err, index)
	}
	fmt.Fprintf(c.App.Writer, "removed %d\n", index)
	return nil
}

func failedClearAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return &usageError{msg: "failed clear: takes no arguments", hint: "resqued failed clear"}
	}
	client, done, err := adminClient(c)
	if err != nil {
		return err
	}
	defer done()
	n, err := client.ClearFailed(c.Context)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "removed %d\n", n)
	return nil
}

// indexOrAll reads "INDEX" or "--all" (exactly one of them).
func indexOrAll(c *cli.Context, verb string) (int, bool, error) {
	hint := fmt.Sprintf("resqued failed %s 0 (an INDEX from resqued failed list), or resqued failed %s --all", verb, verb)
	all := c.Bool("all")
	if all && c.NArg() == 0 {
		return 0, true, nil
	}
	if all || c.NArg() != 1 {
		return 0, false, &usageError{msg: "failed " + verb + ": want exactly one INDEX, or --all", hint: hint}
	}
	index, err := strconv.Atoi(c.Args().First())
	if err != nil || index < 0 {
		return 0, false, &usageError{msg: fmt.Sprintf("failed %s: INDEX %q: want a number, 0 or more", verb, c.Args().First()), hint: hint}
	}
	return index, false, nil
}

// noFailure turns ErrNoFailure into exit status 3 with a plain message.
func noFailure(err error, index int) error {
	if errors.Is(err, queue.ErrNoFailure) {
		return cli.Exit(fmt.Sprintf("no failure at index %d (see resqued failed list)", index), 3)
	}
	return err
}

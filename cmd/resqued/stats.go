package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
)

// The read-only operator views: stats, queues and workers.

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "print processed and failed totals, queue sizes, how many workers are registered and working, how many unique locks resqued's jobs hold, and (with --handlers-config) each concurrency and rate limit",
		Flags: append(connFlags(), &cli.BoolFlag{Name: "json", Usage: "print a JSON object"},
			&cli.StringFlag{Name: "handlers-config", EnvVars: []string{"RESQUED_HANDLERS_CONFIG"}, Usage: "the daemons' handlers config `FILE`: show its concurrency and rate limits, in use and waiting"}),
		Action: statsAction,
	}
}

func statsAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return &usageError{msg: "stats: takes no arguments", hint: "resqued stats --json"}
	}
	client, done, err := adminClient(c)
	if err != nil {
		return err
	}
	defer done()
	conf, err := loadHandlersConfig(c, "stats: ")
	if err != nil {
		return err
	}
	limits := conf.Limits()
	s, err := client.Stats(c.Context)
	if err != nil {
		return err
	}
	locks, err := client.UniqueLocks(c.Context)
	if err != nil {
		return err
	}
	var use []queue.LimitUse
	if limits != nil {
		names := make([]string, len(s.Queues))
		for i, q := range s.Queues {
			names[i] = q.Queue
		}
		if use, err = client.LimitsInUse(c.Context, limits, names); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		type withLocks struct {
			*queue.Stats
			UniqueLocks int `json:"unique_locks"`
		}
		if limits == nil {
			return printJSON(c.App.Writer, withLocks{s, locks})
		}
		return printJSON(c.App.Writer, struct {
			withLocks
			Limits []queue.LimitUse `json:"limits"`
		}{withLocks{s, locks}, use})
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintf(tw, "processed\t%d\n", s.Processed)
	fmt.Fprintf(tw, "failed\t%d\t(%d in the failed list)\n", s.Failed, s.FailedNow)
	fmt.Fprintf(tw, "pending\t%d\n", s.Pending)
	fmt.Fprintf(tw, "queues\t%d\n", len(s.Queues))
	for _, q := range s.Queues {
		fmt.Fprintf(tw, "  %s\t%d%s\n", oneLine(q.Queue), q.Size, pausedSuffix(q))
	}
	fmt.Fprintf(tw, "workers\t%d\n", s.Workers)
	fmt.Fprintf(tw, "working\t%d\n", s.Working)
	if locks > 0 {
		// Only then: scripts reading stats see the lines they always did.
		fmt.Fprintf(tw, "unique\t%d locks held\n", locks)
	}
	if limits != nil {
		fmt.Fprintf(tw, "limits\t%d\n", len(use))
		for _, l := range use {
			fmt.Fprintf(tw, "  %s\t%s\twaiting %d\n", oneLine(l.Limit), limitState(l), l.Waiting)
		}
	}
	return tw.Flush()
}

// limitState says how full limit l is: "concurrency 2/3", "rate 4/10
// per 1s (held back 12)".
func limitState(l queue.LimitUse) string {
	var parts []string
	if l.Concurrency > 0 {
		parts = append(parts, fmt.Sprintf("concurrency %d/%d", l.InUse, l.Concurrency))
	}
	if l.Rate > 0 {
		parts = append(parts, fmt.Sprintf("rate %d/%d per %s (held back %d)", l.Started, l.Rate, l.Per, l.RateLimited))
	}
	return strings.Join(parts, ", ")
}

func queuesCommand() *cli.Command {
	return &cli.Command{
		Name:   "queues",
		Usage:  "list every queue, the number of jobs waiting in it and whether it is paused (see queue list)",
		Flags:  append(connFlags(), &cli.BoolFlag{Name: "json", Usage: "print a JSON array"}),
		Action: queuesAction,
	}
}

func queuesAction(c *cli.Context) error { return listQueues(c, "queues", false) }

// listQueues prints the queues and their sizes (resqued queues); with
// elsewhere (resqued queue list) also the paused queues that are not in
// the queues set, and whether every worker is paused.
func listQueues(c *cli.Context, command string, elsewhere bool) error {
	if c.NArg() > 0 {
		return &usageError{msg: command + ": takes no arguments", hint: "resqued " + command + " --json"}
	}
	client, done, err := adminClient(c)
	if err != nil {
		return err
	}
	defer done()
	qs, err := client.QueueSizes(c.Context)
	if err != nil {
		return err
	}
	if elsewhere {
		if qs, err = addPausedElsewhere(c, client, qs); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, qs)
	}
	if err := printQueueTable(c.App.Writer, qs); err != nil || !elsewhere {
		return err
	}
	if all, err := client.PausedAll(c.Context); err == nil && all {
		fmt.Fprintln(c.App.Writer, "every worker is paused: pause-all-workers is \"true\"")
	}
	return nil
}

func workersCommand() *cli.Command {
	return &cli.Command{
		Name:   "workers",
		Usage:  "list registered workers and what each is doing",
		Flags:  append(connFlags(), &cli.BoolFlag{Name: "json", Usage: "print a JSON array"}),
		Action: workersAction,
	}
}

func workersAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return &usageError{msg: "workers: takes no arguments", hint: "resqued workers --json"}
	}
	client, done, err := adminClient(c)
	if err != nil {
		return err
	}
	defer done()
	ws, err := client.WorkerInfos(c.Context)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, ws)
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "ID\tHOST\tPID\tQUEUES\tDOING\tSTARTED\tHEARTBEAT")
	for _, w := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(w.ID), orDash(w.Host), orDash(pidString(w.PID)),
			orDash(strings.Join(w.Queues, ",")), oneLine(doing(w)), orDash(humanTime(w.Started)), orDash(humanTime(w.Heartbeat)))
	}
	return tw.Flush()
}

// doing is a worker's state in one phrase.
func doing(w queue.WorkerInfo) string {
	switch w.State {
	case "working":
		return fmt.Sprintf("%s %s since %s", orDash(w.Queue), orDash(w.Class), orDash(humanTime(w.RunAt)))
	case "paused":
		if w.RunAt != "" {
			return "paused since " + humanTime(w.RunAt)
		}
	}
	return w.State
}

// adminClient connects to Redis for an operator command; done closes the
// pool.
func adminClient(c *cli.Context) (*queue.Client, func(), error) {
	rc, err := connect(c, nil)
	if err != nil {
		return nil, nil, err
	}
	return rc.queue, func() { rc.Close() }, nil
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// printJSON prints v indented, as handlers --json does.
func printJSON(w io.Writer, v interface{}) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// oneLine makes s safe for one table cell: no tabs or line breaks.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func orDash(s string) string {
	if s = oneLine(s); s == "" {
		return "-"
	}
	return s
}

func pidString(pid int) string {
	if pid == 0 {
		return ""
	}
	return strconv.Itoa(pid)
}

package main

import (
	"fmt"
	"io"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
)

// The queue command: pause and resume one queue for every worker, in
// resque-pause's layout, and list the queues with their pause.

func queueCommand() *cli.Command {
	return &cli.Command{
		Name:  "queue",
		Usage: "pause, resume and list queues (pausing one queue stops every worker taking its jobs, as resque-pause does)",
		Subcommands: []*cli.Command{
			{
				Name:      "pause",
				Usage:     "stop every worker taking jobs from queue Q; running jobs finish",
				ArgsUsage: "Q [Q...]",
				Description: "Sets resque-pause's key pause:queue:<Q> to \"true\", so Ruby workers with resque-pause stop too. " +
					"Once the command returns, no worker takes a job from Q: each reserve looks at the key. " +
					"A queue nobody has pushed to yet can be paused; the pause holds for when one does. " +
					"To pause every worker at once, set pause-all-workers to \"true\" instead.",
				Flags:  connFlags(),
				Action: queuePauseAction,
			},
			{
				Name:      "resume",
				Usage:     "let workers take jobs from queue Q again",
				ArgsUsage: "Q [Q...]",
				Flags:     connFlags(),
				Action:    queueResumeAction,
			},
			{
				Name:        "list",
				Usage:       "list every queue with its size and whether it is paused",
				ArgsUsage:   " ",
				Description: "Lists the queues set, and the paused queues that are not in it (paused before any job was pushed).",
				Flags:       append(connFlags(), &cli.BoolFlag{Name: "json", Usage: "print a JSON array"}),
				Action:      queueListAction,
			},
		},
	}
}

func queuePauseAction(c *cli.Context) error { return setQueuePause(c, "pause") }

func queueResumeAction(c *cli.Context) error { return setQueuePause(c, "resume") }

// setQueuePause pauses or resumes (verb) each queue named, in order,
// saying what it did for each.
func setQueuePause(c *cli.Context, verb string) error {
	names, err := queueNames(c, verb)
	if err != nil {
		return err
	}
	client, done, err := adminClient(c)
	if err != nil {
		return err
	}
	defer done()
	set := client.ResumeQueue
	if verb == "pause" {
		set = client.PauseQueue
	}
	for _, q := range names {
		ch, err := set(c.Context, q)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, pauseChangeLine(ch))
	}
	return nil
}

// queueNames reads queue pause's and resume's arguments: one or more
// queue names, each one queue (no pattern, no list).
func queueNames(c *cli.Context, verb string) ([]string, error) {
	hint := "resqued queue " + verb + " QUEUE"
	if c.NArg() == 0 {
		return nil, &usageError{msg: "queue " + verb + ": name the queue to " + verb, hint: hint}
	}
	for _, q := range c.Args().Slice() {
		if queue.IsPattern(q) {
			msg := fmt.Sprintf("queue %s: %q is a pattern, not a queue: name each queue", verb, q)
			if q == "*" && verb == "pause" {
				hint = "resqued queue pause high   (one queue; to pause every worker, SET <namespace>:pause-all-workers true)"
			}
			return nil, &usageError{msg: msg, hint: hint}
		}
		if err := queue.ValidateQueueName(q); err != nil {
			return nil, &usageError{msg: "queue " + verb + ": " + err.Error(), hint: hint}
		}
	}
	return c.Args().Slice(), nil
}

// pauseChangeLine says in one line what pausing or resuming did.
func pauseChangeLine(ch queue.QueuePauseChange) string {
	var line string
	switch {
	case ch.Paused && ch.Changed:
		line = "paused queue " + ch.Queue
	case ch.Paused:
		line = "queue " + ch.Queue + " was already paused"
	case ch.Changed:
		line = "resumed queue " + ch.Queue
	default:
		line = "queue " + ch.Queue + " was not paused"
	}
	if !ch.Known {
		line += " (no job has been pushed to it yet)"
	}
	return line
}

func queueListAction(c *cli.Context) error { return listQueues(c, "queue list", true) }

// addPausedElsewhere adds to qs (sorted) the paused queues that are not
// in the queues set, with their sizes, keeping the order.
func addPausedElsewhere(c *cli.Context, client *queue.Client, qs []queue.QueueSize) ([]queue.QueueSize, error) {
	paused, err := client.PausedQueues(c.Context)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, q := range qs {
		known[q.Queue] = true
	}
	added := false
	for _, q := range paused {
		if known[q] {
			continue
		}
		n, err := client.Size(c.Context, q)
		if err != nil {
			return nil, err
		}
		qs, added = append(qs, queue.QueueSize{Queue: q, Size: n, Paused: true}), true
	}
	if added {
		sort.Slice(qs, func(i, j int) bool { return qs[i].Queue < qs[j].Queue })
	}
	return qs, nil
}

// printQueueTable is queues' and queue list's human output.
func printQueueTable(w io.Writer, qs []queue.QueueSize) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "QUEUE\tSIZE\tPAUSED")
	for _, q := range qs {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", oneLine(q.Queue), q.Size, yesNo(q.Paused))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// pausedSuffix is what stats prints after a paused queue's size.
func pausedSuffix(q queue.QueueSize) string {
	if q.Paused {
		return "\tpaused"
	}
	return ""
}

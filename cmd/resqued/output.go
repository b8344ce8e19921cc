package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/worker"
)

// keepOutputTail is how much of each stream --keep-output keeps per job.
const keepOutputTail = 64 << 10

// keepOutputFlags are the daemon's kept-output flags (docs/handlers.md,
// "Kept output").
func keepOutputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "keep-output", EnvVars: []string{"RESQUED_KEEP_OUTPUT"}, Value: "off", Usage: "keep the last 64 KiB of each job's stdout and stderr in Redis for this `DURATION` (7d, 12h, 30m; off), shown by resqued output and the dashboard"},
		&cli.BoolFlag{Name: "keep-output-on-success", EnvVars: []string{"RESQUED_KEEP_OUTPUT_ON_SUCCESS"}, Value: true, Usage: "with --keep-output, keep successful jobs' output too; =false keeps only failures'"},
		&cli.IntFlag{Name: "keep-output-max-jobs", EnvVars: []string{"RESQUED_KEEP_OUTPUT_MAX_JOBS"}, Value: queue.DefaultOutputMaxJobs, Usage: "with --keep-output, keep at most this many jobs' output, deleting the oldest"},
	}
}

// parseKeep reads a --keep-output duration: a number with d, h, m or s
// (or any Go duration), "0" or "off" for none.
func parseKeep(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "0", "off", "false":
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.ParseFloat(n, 64)
		if err != nil || d <= 0 {
			return 0, errors.New("want a duration such as 7d, 12h or 30m")
		}
		return time.Duration(d * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errors.New("want a duration such as 7d, 12h or 30m")
	}
	return d, nil
}

// keepOutputConfig reads the kept-output flags into cfg and rcfg.
func keepOutputConfig(c *cli.Context, cfg *worker.Config, rcfg *runner.Config) error {
	d, err := parseKeep(c.String("keep-output"))
	if err != nil {
		return &usageError{msg: fmt.Sprintf("--keep-output %q: %v, or off", c.String("keep-output"), err), hint: "--keep-output 7d"}
	}
	if c.Int("keep-output-max-jobs") < 1 {
		return &usageError{msg: fmt.Sprintf("--keep-output-max-jobs %d: want at least 1", c.Int("keep-output-max-jobs")), hint: "--keep-output-max-jobs 10000"}
	}
	if d == 0 {
		return nil
	}
	cfg.KeepOutput, cfg.KeepOutputFailuresOnly, cfg.KeepOutputMaxJobs = d, !c.Bool("keep-output-on-success"), c.Int("keep-output-max-jobs")
	rcfg.StdoutTail = keepOutputTail
	if rcfg.StderrTail < keepOutputTail {
		rcfg.StderrTail = keepOutputTail
	}
	return nil
}

func outputCommand() *cli.Command {
	return &cli.Command{
		Name:      "output",
		Usage:     "print what a job printed, as --keep-output kept it",
		ArgsUsage: "ID",
		Description: "ID is the job's id (what enqueue printed, the payload's \"id\"), or for a job without one\n" +
			"the output id resqued failed list and the dashboard show. stdout comes first, then stderr.",
		Flags: append(connFlags(),
			&cli.StringFlag{Name: "stream", Usage: "print only `STREAM` (stdout or stderr), raw, without labels"},
		),
		Action: outputAction,
	}
}

func outputAction(c *cli.Context) error {
	const hint = "resqued output 3f2a... (the id enqueue printed, or the output id resqued failed list shows)"
	id := c.Args().First()
	if c.NArg() != 1 {
		return &usageError{msg: "output: want exactly one job ID", hint: hint}
	}
	if err := queue.ValidateOutputID(id); err != nil {
		return &usageError{msg: "output: " + err.Error(), hint: hint}
	}
	stream := c.String("stream")
	if stream != "" && stream != "stdout" && stream != "stderr" {
		return &usageError{msg: fmt.Sprintf("output --stream %q: want stdout or stderr", stream), hint: "resqued output --stream stderr " + id}
	}
	rc, err := connect(c, nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	o, err := rc.queue.Output(c.Context, id)
	if errors.Is(err, queue.ErrNoOutput) {
		return cli.Exit(fmt.Sprintf("no output kept for job %s: output is kept only by a daemon started with --keep-output (for failures only with --keep-output-on-success=false), only for jobs that printed something, and expires after the --keep-output duration", id), 3)
	}
	if err != nil {
		return err
	}
	w := c.App.Writer
	if stream != "" {
		lines := o.Stdout
		if stream == "stderr" {
			lines = o.Stderr
		}
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
		return nil
	}
	fmt.Fprintf(w, "job %s: %s on %s, attempt %d, %s at %s by %s\n", o.ID, o.Class, o.Queue, max(o.Attempt, 1), o.Outcome, o.At.UTC().Format(time.RFC3339), o.Worker)
	if o.Error != "" {
		fmt.Fprintf(w, "error: %s\n", o.Error)
	}
	for _, s := range []struct {
		name  string
		lines []string
	}{{"stdout", o.Stdout}, {"stderr", o.Stderr}} {
		fmt.Fprintf(w, "--- %s (%d lines) ---\n", s.name, len(s.lines))
		for _, l := range s.lines {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}

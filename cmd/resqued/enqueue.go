package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/internal/jsonerr"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/status"
)

func enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:      "enqueue",
		Usage:     "put a job on a queue and print its id",
		ArgsUsage: "CLASS [ARG...]  |  --stdin < jobs.jsonl",
		Description: "Each ARG is taken as JSON when it parses as JSON (42, true, {\"a\":1}) and as a string otherwise;\n" +
			"--args '[...]' gives the whole args array instead.\n\n" +
			"With --stdin, each line of standard input is one job, {\"class\":\"C\",\"args\":[...],\"queue\":\"q\"}\n" +
			"(args defaults to [], queue to --queue); they are enqueued in pipelined batches, each batch\n" +
			"one transaction, and one id per line is printed (the count alone with --quiet). At the first\n" +
			"invalid line it stops: the lines before it are enqueued, that line and the rest are not.\n\n" +
			"With --in or --at the job is delayed (resque-scheduler's layout) and the running daemon's\n" +
			"scheduler pushes it to its queue when due (docs/scheduling.md).\n\n" +
			"With --unique the job is enqueued only if no copy of it (same class and args) is queued,\n" +
			"delayed or running on that queue, in resque-loner's layout; otherwise the id of the job\n" +
			"already there is printed and the exit status is 0 (1 with --fail-on-duplicate).",
		Flags: append(append(append(redisOnly(connFlags()), replicaFlags()...),
			&cli.StringFlag{Name: "queue", Aliases: []string{"q"}, Value: "default", Usage: "queue to push to"},
			&cli.StringFlag{Name: "args", Usage: "the whole args `JSON` array"},
			&cli.BoolFlag{Name: "track", Usage: "create a php-resque status for the job; the printed id is its token"},
			&cli.BoolFlag{Name: "wait", Usage: "track the job, wait until it ends, print its result; exit 0 if it succeeded, 1 if it failed, 124 on --wait-timeout"},
			&cli.StringFlag{Name: "wait-timeout", Value: "60", Usage: "seconds --wait waits (or a duration such as 2m)"},
			&cli.BoolFlag{Name: "stdin", Usage: "read jobs from standard input, one JSON object per line: {\"class\":\"C\",\"args\":[...],\"queue\":\"q\"}"},
			&cli.BoolFlag{Name: "quiet", Usage: "with --stdin, print only the number of jobs enqueued"},
		), append(delayFlags(), uniqueFlags()...)...),
		Action: enqueueAction,
	}
}

// redisOnly keeps the flags that choose the Redis server and namespace:
// enqueue logs nothing, so the logging flags would mean nothing in it.
func redisOnly(flags []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if n := f.Names()[0]; n == "redis" || n == "namespace" {
			out = append(out, f)
		}
	}
	return out
}

func enqueueAction(c *cli.Context) error {
	at, later, err := delayTime(c)
	if err != nil {
		return err
	}
	unique, err := uniqueTTL(c)
	if err != nil {
		return err
	}
	if c.Bool("stdin") {
		if later {
			return &usageError{msg: "enqueue --stdin: --in and --at delay one job; they do not go with --stdin", hint: "resqued enqueue --in 90s MyJob"}
		}
		return enqueueStdin(c)
	}
	if c.Bool("quiet") {
		return &usageError{msg: "enqueue: --quiet goes with --stdin", hint: "resqued enqueue --stdin --quiet < jobs.jsonl"}
	}
	class := c.Args().First()
	if class == "" {
		return &usageError{msg: "enqueue: no job class given; put it after enqueue's flags, then the job's ARGs", hint: "resqued enqueue --queue default MyJob 42"}
	}
	if err := runner.ValidateClass(class); err != nil {
		return &usageError{msg: fmt.Sprintf("enqueue: %v", err), hint: "resqued enqueue --queue default MyJob 42"}
	}
	args, err := buildArgs(c.String("args"), c.Args().Tail())
	if err != nil {
		return &usageError{msg: "enqueue: " + err.Error(), hint: `resqued enqueue --args '[1, "two"]' MyJob`}
	}
	for _, w := range misplacedFlags(c.Command.Flags, "resqued enqueue", class, c.Args().Tail()) {
		fmt.Fprintln(c.App.ErrWriter, w)
	}
	q := c.String("queue")
	if err := queue.ValidateQueueName(q); err != nil {
		return &usageError{msg: "enqueue: " + err.Error(), hint: "resqued enqueue --queue default " + class}
	}
	id := queue.NewID()
	payload, err := queue.EncodeTraced(class, args, id, enqueueTrace(c))
	if err != nil {
		return &usageError{msg: "enqueue: " + err.Error()}
	}
	rc, err := connect(c, nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	opt := queue.EnqueueOptions{Track: c.Bool("track") || c.Bool("wait"), ID: id, Unique: unique}
	if later {
		err = rc.queue.Delay(c.Context, at, q, payload, opt)
	} else {
		err = rc.queue.Enqueue(c.Context, q, payload, opt)
	}
	if dup := asDuplicate(err); dup != nil {
		return reportDuplicate(c, dup)
	}
	if err != nil && !errors.Is(err, queue.ErrNotAcknowledged) {
		return err
	}
	if err != nil && c.Bool("wait") {
		// The job is in; whether it runs is what --wait is about.
		fmt.Fprintf(c.App.ErrWriter, "resqued: %s\n", unacknowledged("job "+id+" was enqueued", err))
	}
	if c.Bool("wait") {
		return waitFor(c, rc.status, id)
	}
	fmt.Fprintln(c.App.Writer, id)
	if err != nil {
		return cli.Exit(unacknowledged("job "+id+" was enqueued", err), exitUnacknowledged)
	}
	return nil
}

// exitUnacknowledged is enqueue's exit status when the job was enqueued
// but fewer than --min-replicas replicas acknowledged it in time.
const exitUnacknowledged = 4

// unacknowledged says, in the user's words, that what was done is on the
// master only (err wraps queue.ErrNotAcknowledged).
func unacknowledged(done string, err error) string { return unacknowledgedIt(done, "it", err) }

// unacknowledgedIt is unacknowledged for what "it" names (them, ...).
func unacknowledgedIt(done, it string, err error) string {
	var na *queue.NotAcknowledgedError
	if !errors.As(err, &na) {
		return fmt.Sprintf("%s, but not acknowledged by --min-replicas replicas (%v): a failover now could lose %s", done, err, it)
	}
	if na.Err != nil {
		return fmt.Sprintf("%s, but whether %d replicas have %s is unknown (%v): a failover now could lose %s", done, na.Want, it, na.Err, it)
	}
	return fmt.Sprintf("%s, but only %d of %d replicas acknowledged %s within %s: a failover now could lose %s", done, na.Got, na.Want, it, na.Timeout, it)
}

// waitFor polls job id's status until it ends, then prints its result
// (stdout) or error (stderr).
func waitFor(c *cli.Context, t *status.Tracker, id string) error {
	limit, err := parseSeconds(c.String("wait-timeout"))
	if err != nil || limit <= 0 {
		return &usageError{msg: fmt.Sprintf("enqueue: --wait-timeout %q: want seconds", c.String("wait-timeout")), hint: "--wait-timeout 30"}
	}
	deadline := time.Now().Add(limit)
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
			return cli.Exit(fmt.Sprintf("job %s still %s after %s (it stays queued or running)", id, s.Code, limit), 124)
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
			return nil, errors.New(jsonerr.Explain("--args", "a JSON array", []byte(whole), err))
		}
		if v == nil {
			return nil, errors.New("--args is null, not a JSON array")
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

// Bulk enqueueing (--stdin) sends jobs in batches of at most
// bulkBatchJobs jobs or bulkBatchBytes bytes of payload, whichever
// comes first.
const (
	bulkBatchJobs  = 1000
	bulkBatchBytes = 1 << 20
)

// bulkLine is one line of enqueue --stdin input.
type bulkLine struct {
	Class string          `json:"class"`
	Args  json.RawMessage `json:"args"`
	Queue string          `json:"queue"`
}

// bulkJob is a validated, encoded job waiting in a batch.
type bulkJob struct {
	queue   string
	id      string
	payload []byte
}

// enqueueStdin is enqueue --stdin: JSON lines in, one id per line out.
// Each batch is one MULTI/EXEC (queue.Bulk), so every job's SADD and
// RPUSH are applied together, in input order, and a batch costs one
// round trip.
func enqueueStdin(c *cli.Context) error {
	const hint = `printf '%s\n' '{"class":"Resize","args":[42],"queue":"images"}' | resqued enqueue --stdin`
	switch {
	case c.NArg() > 0:
		return &usageError{msg: "enqueue --stdin: takes no CLASS or ARGs; each input line is a job", hint: hint}
	case c.IsSet("args"):
		return &usageError{msg: "enqueue --stdin: give args in each input line, not with --args", hint: hint}
	case c.Bool("wait"):
		return &usageError{msg: "enqueue --stdin: --wait waits for one job; it does not go with --stdin", hint: hint}
	}
	defQueue := c.String("queue")
	if err := queue.ValidateQueueName(defQueue); err != nil {
		return &usageError{msg: "enqueue --stdin: --queue: " + err.Error(), hint: hint}
	}
	rc, err := connect(c, nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	bulk, err := rc.queue.Bulk(c.Context)
	if err != nil {
		return fmt.Errorf("enqueue --stdin: %w", err)
	}
	defer bulk.Close()

	track, quiet, tr := c.Bool("track"), c.Bool("quiet"), enqueueTrace(c)
	out := bufio.NewWriterSize(c.App.Writer, 64<<10)
	defer out.Flush()
	in := bufio.NewReaderSize(c.App.Reader, 64<<10)

	var (
		batch      []bulkJob
		batchBytes int
		batchFirst int // line numbers of the batch's first and last jobs
		batchLast  int
		done       int // jobs enqueued so far
		unacked    int // of which too few replicas acknowledged
		lastUnack  error
		lineNo     int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := bulk.Enqueue(bulkJobs(batch), track); errors.Is(err, queue.ErrNotAcknowledged) {
			unacked += len(batch)
			lastUnack = err
		} else if err != nil {
			out.Flush()
			return fmt.Errorf("enqueue --stdin: batch of lines %d-%d: %w (the %d jobs before it were enqueued)",
				batchFirst, batchLast, err, done)
		}
		done += len(batch)
		if !quiet {
			for _, j := range batch {
				out.WriteString(j.id)
				out.WriteByte('\n')
			}
		}
		batch, batchBytes = batch[:0], 0
		return nil
	}
	for {
		line, rerr := in.ReadBytes('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			if err := flush(); err != nil {
				return err
			}
			return fmt.Errorf("enqueue --stdin: read input after line %d: %w (%d jobs enqueued)", lineNo, rerr, done)
		}
		if len(line) > 0 {
			lineNo++
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			job, err := parseBulkLine(trimmed, lineNo, defQueue, tr)
			if err != nil {
				// Enqueue what came before, so that exactly the lines
				// before this one are in Redis.
				if ferr := flush(); ferr != nil {
					return ferr
				}
				out.Flush()
				return &usageError{
					msg:  fmt.Sprintf("enqueue --stdin: %v; the %d jobs before it were enqueued, this line and the rest were not", err, done),
					hint: hint,
				}
			}
			if len(batch) == 0 {
				batchFirst = lineNo
			}
			batch, batchLast = append(batch, job), lineNo
			batchBytes += len(job.payload)
			if len(batch) >= bulkBatchJobs || batchBytes >= bulkBatchBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if rerr != nil { // io.EOF
			break
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if quiet {
		fmt.Fprintln(out, done)
	}
	if unacked > 0 {
		out.Flush()
		return cli.Exit(unacknowledgedIt(fmt.Sprintf("all %d jobs were enqueued", done),
			fmt.Sprintf("%d of them", unacked), lastUnack), exitUnacknowledged)
	}
	return nil
}

// bulkWant is what an enqueue --stdin line must be.
const bulkWant = `an object {"class":"C","args":[...],"queue":"q"}`

// parseBulkLine validates input line lineNo and encodes its payload with
// a fresh id and trace context tr. Its errors start with "line N".
func parseBulkLine(line []byte, lineNo int, defQueue string, tr queue.Trace) (bulkJob, error) {
	where := fmt.Sprintf("line %d", lineNo)
	var l bulkLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields() // a misspelt "queue" must not send jobs to the default queue
	if err := dec.Decode(&l); err != nil {
		msg := jsonerr.Explain(where, bulkWant, line, err)
		if strings.Contains(msg, "unknown field") {
			msg += `; a line has only "class", "args" and "queue"`
		}
		return bulkJob{}, errors.New(msg)
	}
	if dec.More() {
		return bulkJob{}, fmt.Errorf("%s has more than one JSON value; want one JSON object per line", where)
	}
	if l.Class == "" {
		return bulkJob{}, fmt.Errorf(`%s has no "class"; want %s`, where, bulkWant)
	}
	if err := runner.ValidateClass(l.Class); err != nil {
		return bulkJob{}, fmt.Errorf("%s: %v", where, err)
	}
	q := l.Queue
	if q == "" {
		q = defQueue
	}
	if err := queue.ValidateQueueName(q); err != nil {
		return bulkJob{}, fmt.Errorf("%s: %v", where, err)
	}
	if l.Args == nil {
		l.Args = json.RawMessage("[]")
	} else if a := bytes.TrimSpace(l.Args); a[0] != '[' {
		return bulkJob{}, fmt.Errorf(`%s: "args" is %s, not an array`, where, jsonerr.Kind(string(a)))
	}
	id := queue.NewID()
	payload, err := queue.EncodeTraced(l.Class, l.Args, id, tr)
	if err != nil {
		return bulkJob{}, fmt.Errorf("%s: %v", where, err)
	}
	return bulkJob{queue: q, id: id, payload: payload}, nil
}

// bulkJobs hands batch to pkg/queue, which enqueues it in one
// transaction and one round trip.
func bulkJobs(batch []bulkJob) []queue.BulkJob {
	jobs := make([]queue.BulkJob, len(batch))
	for i, j := range batch {
		jobs[i] = queue.BulkJob{Queue: j.queue, ID: j.id, Payload: j.payload}
	}
	return jobs
}

package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
)

// uniqueFlags are enqueue's flags for unique jobs (docs/operations.md,
// "Unique jobs").
func uniqueFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "unique", Usage: "enqueue only if no copy of this job (class and args) is queued, delayed or running on the queue; else print that job's id (resque-loner's lock)"},
		&cli.StringFlag{Name: "unique-ttl", Value: "24h", Usage: "with --unique, how long the lock lasts at most, from the enqueue (from when it is due with --in/--at) and again from each start (a `DURATION` such as 2h, or seconds); implies --unique"},
		&cli.BoolFlag{Name: "fail-on-duplicate", Usage: "with --unique, exit 1 (not 0) when a copy was already there"},
	}
}

// uniqueTTL reads enqueue's --unique flags: the lock's TTL, or 0 for a
// job that is not unique.
func uniqueTTL(c *cli.Context) (time.Duration, error) {
	const hint = "resqued enqueue --unique --unique-ttl 2h MyJob 42"
	if !c.Bool("unique") && !c.IsSet("unique-ttl") {
		if c.Bool("fail-on-duplicate") {
			return 0, &usageError{msg: "enqueue: --fail-on-duplicate goes with --unique", hint: hint}
		}
		return 0, nil
	}
	if c.Bool("stdin") {
		return 0, &usageError{msg: "enqueue --stdin: --unique makes one job unique; it does not go with --stdin", hint: hint}
	}
	s := c.String("unique-ttl")
	ttl, err := parseSeconds(s)
	if err != nil || ttl <= 0 {
		return 0, &usageError{msg: fmt.Sprintf("enqueue: --unique-ttl %q: want how long the lock lasts, above zero: a duration (2h, 90m) or seconds", s), hint: hint}
	}
	if err := queue.ValidateUniqueTTL(ttl); err != nil {
		return 0, &usageError{msg: "enqueue: --unique-ttl: " + err.Error(), hint: hint}
	}
	return ttl, nil
}

// reportDuplicate tells the user that a unique job was not enqueued
// because of dup: the id of the job already there goes to stdout (as
// an enqueued job's would), what happened to stderr. Exit 0, or 1 with
// --fail-on-duplicate.
func reportDuplicate(c *cli.Context, dup *queue.DuplicateError) error {
	if dup.Holder != "" {
		fmt.Fprintln(c.App.Writer, dup.Holder)
	}
	msg := "not enqueued: " + dup.Error()
	if c.Bool("fail-on-duplicate") {
		return cli.Exit(msg, 1)
	}
	fmt.Fprintf(c.App.ErrWriter, "resqued: %s\n", msg)
	return nil
}

// asDuplicate is err as a *queue.DuplicateError, or nil.
func asDuplicate(err error) *queue.DuplicateError {
	var dup *queue.DuplicateError
	if errors.As(err, &dup) {
		return dup
	}
	return nil
}

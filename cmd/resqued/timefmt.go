package main

import (
	"time"

	"github.com/resqued/resqued/pkg/queue"
)

// humanTimeLayout is the one form every time in resqued's human-facing
// output takes: RFC 3339 in UTC, as enqueue --at reads it, so a time
// from one command can be pasted into another. --json output and Redis
// keep the formats Resque writes.
const humanTimeLayout = time.RFC3339

// humanTimeOf formats t for a person.
func humanTimeOf(t time.Time) string { return t.UTC().Format(humanTimeLayout) }

// storedLayouts are the forms Resque and its tools write times in Redis:
// failed_at, worker:<id>:started (Ruby's Time#to_s), run_at, heartbeats.
var storedLayouts = []string{
	queue.FailedAtFormat, queue.StartedFormat, queue.RunAtFormat, queue.HeartbeatFormat,
	time.RFC3339Nano, "2006-01-02 15:04:05 MST", "Mon Jan 02 15:04:05 MST 2006", time.UnixDate,
}

// humanTime reformats a time read from Redis for a person. A value in no
// known form is shown as stored; an empty one stays empty.
func humanTime(s string) string {
	for _, layout := range storedLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		// A zone abbreviation Go does not know parses as offset 0 under
		// that name; converting it would shift the time. Show it as is.
		if name, off := t.Zone(); off == 0 && name != "UTC" && name != "GMT" && name != "" {
			return s
		}
		return humanTimeOf(t)
	}
	return s
}

package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/trace"
)

// enqueueTrace is the trace context resqued enqueue puts into the
// payloads it writes: its own TRACEPARENT and TRACESTATE environment
// variables (OpenTelemetry's environment carrier), as they are. An
// invalid one is left out with a warning on stderr; the enqueue goes on.
func enqueueTrace(c *cli.Context) queue.Trace {
	parent, state := os.Getenv("TRACEPARENT"), os.Getenv("TRACESTATE")
	if parent == "" {
		return queue.Trace{}
	}
	if _, err := trace.Parse(parent); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "resqued: warning: TRACEPARENT not put in the payload: %v\n", err)
		return queue.Trace{}
	}
	if err := trace.CheckState(state); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "resqued: warning: TRACESTATE not put in the payload: %v\n", err)
		state = ""
	}
	return queue.Trace{Parent: parent, State: state}
}

package worker

import (
	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/trace"
)

// traceContext is what a job's payload says of its trace, as the
// handler and the job's log lines get it.
type traceContext struct {
	// env is the handler's TRACEPARENT (a child span of the payload's
	// traceparent) and TRACESTATE (as the payload had it).
	env []string
	// fields are trace_id and span_id for the job's logger.
	fields []interface{}
}

// traceOf reads the payload's "traceparent" and "tracestate". An
// invalid traceparent is not passed on, and neither is its tracestate;
// an invalid tracestate alone is dropped and the traceparent kept. Each
// costs one warning on log (the job's, which names it) saying what is
// wrong; the job runs regardless.
func traceOf(log hclog.Logger, r *queue.Reserved) traceContext {
	var tc traceContext
	if r.Traceparent == "" {
		if r.Tracestate != "" {
			log.Warn("tracestate ignored: the payload has no traceparent")
		}
		return tc
	}
	p, err := trace.Parse(r.Traceparent)
	if err != nil {
		log.Warn("traceparent ignored, not passed to the handler", "error", err)
		return tc
	}
	child := p.Child()
	tc.env = []string{"TRACEPARENT=" + child.String()}
	tc.fields = []interface{}{"trace_id", child.TraceIDString(), "span_id", child.SpanIDString()}
	if r.Tracestate != "" {
		if err := trace.CheckState(r.Tracestate); err != nil {
			log.Warn("tracestate ignored, not passed to the handler", "error", err)
		} else {
			tc.env = append(tc.env, "TRACESTATE="+r.Tracestate)
		}
	}
	return tc
}

package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// Failure is a record in the failed list. Field order is Ruby Resque's.
type Failure struct {
	FailedAt  string          `json:"failed_at"`
	Payload   json.RawMessage `json:"payload"`
	Exception string          `json:"exception"`
	Error     string          `json:"error"`
	Backtrace []string        `json:"backtrace"`
	Worker    string          `json:"worker"`
	Queue     string          `json:"queue"`
	RetriedAt string          `json:"retried_at,omitempty"`
}

// encode writes the record in Ruby's key order with the payload spliced in
// as it is (NewFailure made it valid JSON), not re-encoded: a large
// payload is copied once, not three times as json.Marshal would.
func (f *Failure) encode() ([]byte, error) {
	head, err := marshal(struct {
		FailedAt string `json:"failed_at"`
	}{f.FailedAt})
	if err != nil {
		return nil, err
	}
	tail, err := marshal(struct {
		Exception string   `json:"exception"`
		Error     string   `json:"error"`
		Backtrace []string `json:"backtrace"`
		Worker    string   `json:"worker"`
		Queue     string   `json:"queue"`
		RetriedAt string   `json:"retried_at,omitempty"`
	}{f.Exception, f.Error, f.Backtrace, f.Worker, f.Queue, f.RetriedAt})
	if err != nil {
		return nil, err
	}
	payload := f.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	b := make([]byte, 0, len(head)+len(payload)+len(tail)+16)
	b = append(b, head[:len(head)-1]...)
	b = append(b, `,"payload":`...)
	b = append(b, payload...)
	b = append(b, ',')
	b = append(b, tail[1:]...)
	return b, nil
}

// Outcome is how a job's run ended, as the worker hands it to FinishJob:
// for a failure, what its record in the failed list says (Ruby Resque's
// exception, error and backtrace); for a success, the handler's result.
// pkg/queue turns it into the failure record and the status detail.
type Outcome struct {
	// Exception is the failure's class; empty means the job succeeded.
	Exception string
	// Error is the failure's message.
	Error string
	// Backtrace is the failure's backtrace (a handler's stderr tail or
	// its own); nil is written as [].
	Backtrace []string
	// Result is what a succeeded job's handler reported on its result
	// descriptor (raw JSON); a tracked job keeps it in its status.
	Result json.RawMessage
	// At is when the job ended: the failure record's failed_at, however
	// long Redis takes to come back. Zero means when it is recorded.
	At time.Time
}

// Failed reports whether the outcome is a failure.
func (o Outcome) Failed() bool { return o.Exception != "" }

// String is "ok", or the failure as a status detail shows it.
func (o Outcome) String() string {
	if !o.Failed() {
		return "ok"
	}
	return o.Exception + ": " + o.Error
}

// failure is the failed-list record of job r ending as o.
func (o Outcome) failure(payload []byte, worker, queue string) *Failure {
	at := o.At
	if at.IsZero() {
		at = time.Now()
	}
	return NewFailure(at, payload, o.Exception, o.Error, o.Backtrace, worker, queue)
}

// detail is what o adds to a tracked job's status, encoded as
// status.Annotate encodes it; empty when nothing.
func (o Outcome) detail() ([]byte, error) {
	var d status.Detail
	switch {
	case o.Failed():
		d.Error = o.String()
	case o.Result != nil:
		d.Result = o.Result
	default:
		return nil, nil
	}
	return json.Marshal(d)
}

// NewFailure builds a failure record for payload (kept as read) at now.
func NewFailure(now time.Time, payload []byte, exception, msg string, backtrace []string, worker, queue string) *Failure {
	if backtrace == nil {
		backtrace = []string{}
	}
	return &Failure{
		FailedAt:  now.UTC().Format(FailedAtFormat),
		Payload:   embed(payload),
		Exception: exception,
		Error:     msg,
		Backtrace: backtrace,
		Worker:    worker,
		Queue:     queue,
	}
}

// Failures returns failure records start..stop (inclusive, Redis LRANGE
// indexes).
func (c *Client) Failures(ctx context.Context, start, stop int) ([]Failure, error) {
	raws, err := redis.ByteSlices(c.do(ctx, "LRANGE", FailedKey(c.ns), start, stop))
	if err != nil {
		return nil, fmt.Errorf("list failures: %w", err)
	}
	out := make([]Failure, 0, len(raws))
	for i, r := range raws {
		var f Failure
		if err := json.Unmarshal(r, &f); err != nil {
			return nil, fmt.Errorf("list failures: record %d: %w", start+i, err)
		}
		out = append(out, f)
	}
	return out, nil
}

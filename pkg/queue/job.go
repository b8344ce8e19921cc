package queue

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/resqued/resqued/internal/jsonerr"
)

// ErrInvalidPayload marks a queue entry that is not a Resque job.
var ErrInvalidPayload = errors.New("invalid payload")

// Job is one payload taken from a queue.
type Job struct {
	Queue string
	Class string
	// Args is the payload's args array as raw JSON, exactly as enqueued
	// ("[]" when the payload had none).
	Args json.RawMessage
	// ID is the payload's "id" (php-resque's status token), if any.
	ID string
	// Payload is the entry exactly as read from Redis, unknown fields and
	// all; it is what failure records and requeues write back.
	Payload []byte
	// Attempt is the payload's "attempt" (1 when absent): which run of a
	// retried job this is.
	Attempt int
	// HasAttempt is set when the payload had a valid "attempt" field.
	HasAttempt bool
	// RetryCounted is set when Attempt came from resque-retry's counter
	// (Client.Restore), which therefore exists.
	RetryCounted bool
	// Retry is the payload's "retry" field, the enqueuer's retry policy
	// override, if any.
	Retry json.RawMessage
	// Unique is the payload's "unique" field, if any: true or a TTL in
	// seconds makes it a unique job, holding a lock (ParseUnique).
	Unique json.RawMessage
	// Traceparent and Tracestate are the payload's top-level
	// "traceparent" and "tracestate" strings, as OpenTelemetry's Ruby
	// Resque instrumentation injects them, unchecked ("" when absent or
	// not strings): whether they are valid W3C Trace Context is the
	// worker's to decide, and never makes the payload invalid.
	Traceparent, Tracestate string

	// uniqueDigest is resque-loner's digest of the job (uniqueDigestOf),
	// kept from the claim of its lock for its release.
	uniqueDigest string
}

// payloadWant is what a queue entry must be, as Decode's errors say it.
const payloadWant = `an object with "class" and "args"`

// invalidPayload is Decode's error: a sentence about the payload that
// still matches ErrInvalidPayload with errors.Is.
type invalidPayload string

func (e invalidPayload) Error() string        { return string(e) }
func (e invalidPayload) Is(target error) bool { return target == ErrInvalidPayload }

func invalidf(format string, a ...interface{}) error {
	return invalidPayload(fmt.Sprintf(format, a...))
}

// Decode parses a queue entry. On error it still returns a Job carrying
// Queue and Payload, so the caller can record the failure without losing
// the entry. Errors match ErrInvalidPayload and say what is wrong with
// the payload in its writer's words.
func Decode(queue string, payload []byte) (*Job, error) {
	return (&Job{Queue: queue, Payload: payload}).decode()
}

// decode fills j in place from j.Payload, and returns j. ID keeps the
// value it had unless the payload has a string "id".
func (j *Job) decode() (*Job, error) {
	payload := j.Payload
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return j, invalidPayload(jsonerr.Explain("payload", payloadWant, payload, err))
	}
	if fields == nil {
		return j, invalidf("payload is null, not %s", payloadWant)
	}
	rawClass, ok := fields["class"]
	if !ok {
		return j, invalidf(`payload has no "class" field`)
	}
	if err := json.Unmarshal(rawClass, &j.Class); err != nil {
		return j, invalidf(`payload's "class" is %s, not a string`, abbrev(rawClass))
	}
	if j.Class == "" {
		return j, invalidf(`payload's "class" is empty`)
	}
	j.Args = json.RawMessage("[]")
	if a := bytes.TrimSpace(fields["args"]); len(a) > 0 && !bytes.Equal(a, []byte("null")) {
		if a[0] != '[' {
			return j, invalidf(`payload's "args" is %s, not an array`, abbrev(a))
		}
		j.Args = a
	}
	if rawID, ok := fields["id"]; ok {
		// A non-string id is not a php-resque token; ignore it.
		_ = json.Unmarshal(rawID, &j.ID)
	}
	j.Attempt = 1
	if a, ok := fields["attempt"]; ok {
		if json.Unmarshal(a, &j.Attempt) != nil || j.Attempt < 1 {
			j.Attempt = 1
		} else {
			j.HasAttempt = true
		}
	}
	j.Retry = fields["retry"]
	j.Unique = fields["unique"]
	// Not strings: not trace context; the worker sees none.
	if raw, ok := fields["traceparent"]; ok {
		_ = json.Unmarshal(raw, &j.Traceparent)
	}
	if raw, ok := fields["tracestate"]; ok {
		_ = json.Unmarshal(raw, &j.Tracestate)
	}
	return j, nil
}

func abbrev(b []byte) string {
	const max = 40
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// Encode builds a payload {"class":...,"args":[...],"id":...}; id may be
// empty, in which case it is left out, as Ruby Resque does.
// It writes no "enqueued_at": payloads are requeued byte for byte, so a
// stamp would be stale after a retry (docs/operations.md, section 13).
func Encode(class string, args json.RawMessage, id string) ([]byte, error) {
	return EncodeTraced(class, args, id, Trace{})
}

// Trace is the W3C trace context a payload carries to its handler, in
// top-level "traceparent" and "tracestate" keys, where OpenTelemetry's
// Ruby Resque instrumentation puts them. The caller checks it (pkg/trace).
type Trace struct {
	Parent, State string
}

// EncodeTraced is Encode with tr's fields added after "id" when not
// empty; with a zero tr its payload is Encode's, byte for byte.
func EncodeTraced(class string, args json.RawMessage, id string, tr Trace) ([]byte, error) {
	if len(bytes.TrimSpace(args)) == 0 {
		args = json.RawMessage("[]")
	}
	// Validate without decoding numbers: 1e700 is valid JSON, and an
	// enqueuer's big numbers must reach the handler unchanged.
	args = bytes.TrimSpace(args)
	if !json.Valid(args) || args[0] != '[' {
		return nil, errors.New("encode args: must be a JSON array")
	}
	p := struct {
		Class string          `json:"class"`
		Args  json.RawMessage `json:"args"`
		ID    string          `json:"id,omitempty"`
		TP    string          `json:"traceparent,omitempty"`
		TS    string          `json:"tracestate,omitempty"`
	}{class, args, id, tr.Parent, tr.State}
	return marshal(p)
}

// marshal is json.Marshal without HTML escaping, so payloads are written
// back as close to how they were read as JSON allows.
func marshal(v interface{}) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// embed returns payload as a JSON value to nest in another document: the
// payload itself when it is valid JSON, else a JSON string holding it, so
// nothing is lost.
func embed(payload []byte) json.RawMessage {
	if json.Valid(payload) {
		return payload
	}
	s := string(payload)
	if !utf8.ValidString(s) {
		s = string(bytes.ToValidUTF8(payload, []byte("\uFFFD")))
	}
	b, _ := marshal(s)
	return b
}

// NewID returns a fresh job id: 32 hex digits, as php-resque makes them.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("read random: %v", err))
	}
	return hex.EncodeToString(b[:])
}

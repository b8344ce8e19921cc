// Package trace reads and writes W3C Trace Context (level 1) headers: the
// traceparent a job's enqueuer put in its payload (OpenTelemetry's Ruby
// Resque instrumentation writes top-level "traceparent" and "tracestate"
// keys) and the child a handler is given in TRACEPARENT. It knows nothing
// of Redis, processes or span export.
package trace

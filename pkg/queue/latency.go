package queue

// Queue latency: how long the job at the head of a queue, the one that has
// waited longest, has been waiting. It is read from the payload when the
// enqueuer wrote a time into it, else timed from when this process first
// saw that head (HeadClock).

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// QueueHead is one queue, the number of jobs waiting in it, its head and
// whether it is paused (PauseQueue).
type QueueHead struct {
	Queue  string
	Size   int
	Paused bool
	// Head is the job at the head of the queue (the next one taken, the
	// oldest), exactly as stored; nil when the queue is empty.
	Head []byte
}

// QueueHeads returns every queue in the queues set, sorted, with its size
// head job and pause, in one round trip after SMEMBERS (LLEN, LINDEX 0
// and EXISTS of the pause key per queue).
func (c *Client) QueueHeads(ctx context.Context) ([]QueueHead, error) {
	qs, err := c.Queues(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]QueueHead, 0, len(qs))
	if len(qs) == 0 {
		return out, nil
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue heads: %w", err)
	}
	defer conn.Close()
	for _, q := range qs {
		_ = conn.Send("LLEN", QueueKey(c.ns, q))
		_ = conn.Send("LINDEX", QueueKey(c.ns, q), 0)
		_ = conn.Send("EXISTS", QueuePauseKey(c.ns, q))
	}
	if err := conn.Flush(); err != nil {
		return nil, fmt.Errorf("queue heads: %w", err)
	}
	for _, q := range qs {
		n, err := redis.Int(conn.Receive())
		if err != nil {
			return nil, fmt.Errorf("size of %s: %w", q, err)
		}
		head, err := redis.Bytes(conn.Receive())
		if err != nil && !errors.Is(err, redis.ErrNil) {
			return nil, fmt.Errorf("head of %s: %w", q, err)
		}
		paused, err := redis.Int(conn.Receive())
		if err != nil {
			return nil, fmt.Errorf("pause of %s: %w", q, err)
		}
		out = append(out, QueueHead{Queue: q, Size: n, Paused: paused == 1, Head: head})
	}
	return out, nil
}

// ActiveJobWrapper is the class Rails' ActiveJob gives every job it puts
// on a Resque queue; the job itself (with its "enqueued_at") is args[0].
const ActiveJobWrapper = "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper"

// EnqueuedAt returns when payload says it was enqueued, and whether it
// says so. It looks, in this order, at:
//
//   - a top-level "enqueued_at", as Sidekiq-style enqueuers and
//     OpenTelemetry's Resque instrumentation write it: Unix seconds (a
//     float), Unix milliseconds (a number above 1e11, as Sidekiq 8
//     writes it), or an RFC 3339 string;
//   - php-resque's top-level "queue_time" (Unix seconds, a float);
//   - ActiveJob's args[0]["enqueued_at"] (RFC 3339) when the class is
//     ActiveJobWrapper.
//
// Ruby Resque and resqued itself write no time (see docs/operations.md).
func EnqueuedAt(payload []byte) (time.Time, bool) {
	var p struct {
		EnqueuedAt json.RawMessage   `json:"enqueued_at"`
		QueueTime  json.RawMessage   `json:"queue_time"`
		Class      string            `json:"class"`
		Args       []json.RawMessage `json:"args"`
	}
	if json.Unmarshal(payload, &p) != nil {
		// A payload that is not JSON, or whose args are not an array,
		// may still carry a time at the top level.
		var top struct {
			EnqueuedAt json.RawMessage `json:"enqueued_at"`
			QueueTime  json.RawMessage `json:"queue_time"`
		}
		if json.Unmarshal(payload, &top) != nil {
			return time.Time{}, false
		}
		p.EnqueuedAt, p.QueueTime = top.EnqueuedAt, top.QueueTime
	}
	if t, ok := parseStamp(p.EnqueuedAt); ok {
		return t, true
	}
	if t, ok := parseStamp(p.QueueTime); ok {
		return t, true
	}
	if p.Class == ActiveJobWrapper && len(p.Args) > 0 {
		var aj struct {
			EnqueuedAt json.RawMessage `json:"enqueued_at"`
		}
		if json.Unmarshal(p.Args[0], &aj) == nil {
			return parseStamp(aj.EnqueuedAt)
		}
	}
	return time.Time{}, false
}

// parseStamp reads a JSON time: Unix seconds or milliseconds as a
// number, or an RFC 3339 string. Anything else, including 0 and null, is
// no time.
func parseStamp(raw json.RawMessage) (time.Time, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return time.Time{}, false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return time.Time{}, false
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, true
		}
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) {
		return time.Time{}, false
	}
	if f > 1e11 { // milliseconds: 1e11 seconds is the year 5138
		f /= 1000
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// HeadClock times the heads of queues whose payloads carry no enqueue
// time: it remembers, per queue, the head it last saw (by SHA-1) and when
// it first saw it, and forgets it when the head changes or the queue
// empties. Such a latency starts at 0 when this process starts, and two
// byte-identical jobs in a row count as one. The zero HeadClock is ready
// to use; it is safe for concurrent use.
type HeadClock struct {
	mu   sync.Mutex
	seen map[string]firstSeen
}

type firstSeen struct {
	sum [sha1.Size]byte
	at  time.Time
}

// Latencies returns, for each of heads, how long its head job has been
// waiting at now: since EnqueuedAt when the payload says, else since this
// clock first saw that head. An empty queue waits 0, and so does a job
// enqueued after now (a skewed clock). Queues not in heads are
// forgotten, so heads should be every queue (QueueHeads).
func (c *HeadClock) Latencies(heads []QueueHead, now time.Time) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.seen
	c.seen = make(map[string]firstSeen, len(old))
	out := make([]time.Duration, len(heads))
	for i, h := range heads {
		if h.Head == nil {
			continue
		}
		since, ok := EnqueuedAt(h.Head)
		if !ok {
			sum := sha1.Sum(h.Head)
			fs, known := old[h.Queue]
			if !known || fs.sum != sum {
				fs = firstSeen{sum: sum, at: now}
			}
			c.seen[h.Queue] = fs
			since = fs.at
		}
		if d := now.Sub(since); d > 0 {
			out[i] = d
		}
	}
	return out
}

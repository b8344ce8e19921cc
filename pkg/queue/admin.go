package queue

// Operator views and actions behind `resqued stats`, `queues`, `workers`
// and `failed`: read-only summaries, and the failed-list actions resque-web
// offers (retry, remove, clear), with its semantics.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// QueueSize is one queue, the number of jobs waiting in it and whether it
// is paused (PauseQueue).
type QueueSize struct {
	Queue  string `json:"queue"`
	Size   int    `json:"size"`
	Paused bool   `json:"paused"`
}

// QueueSizes returns every queue in the queues set, sorted, with its
// size and pause, in one round trip after SMEMBERS.
func (c *Client) QueueSizes(ctx context.Context) ([]QueueSize, error) {
	qs, err := c.Queues(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]QueueSize, 0, len(qs))
	if len(qs) == 0 {
		return out, nil
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue sizes: %w", err)
	}
	defer conn.Close()
	for _, q := range qs {
		_ = conn.Send("LLEN", QueueKey(c.ns, q))
		_ = conn.Send("EXISTS", QueuePauseKey(c.ns, q))
	}
	if err := conn.Flush(); err != nil {
		return nil, fmt.Errorf("queue sizes: %w", err)
	}
	for _, q := range qs {
		n, err := redis.Int(conn.Receive())
		if err != nil {
			return nil, fmt.Errorf("size of %s: %w", q, err)
		}
		paused, err := redis.Int(conn.Receive())
		if err != nil {
			return nil, fmt.Errorf("pause of %s: %w", q, err)
		}
		out = append(out, QueueSize{Queue: q, Size: n, Paused: paused == 1})
	}
	return out, nil
}

// WorkerInfo describes one registered worker.
type WorkerInfo struct {
	ID     string   `json:"id"`
	Host   string   `json:"host"`
	PID    int      `json:"pid"`
	Queues []string `json:"queues"`
	// State is "idle", "paused" or "working".
	State string `json:"state"`
	// Queue, Class and RunAt describe the job while State is "working"
	// (RunAt is the pause time while "paused").
	Queue     string `json:"queue,omitempty"`
	Class     string `json:"class,omitempty"`
	RunAt     string `json:"run_at,omitempty"`
	Started   string `json:"started"`
	Heartbeat string `json:"heartbeat"`
}

// WorkerInfos returns every registered worker, sorted by id, read in one
// round trip after SMEMBERS. A worker:<id> value that is not JSON shows
// as working on an unknown class rather than failing the listing.
func (c *Client) WorkerInfos(ctx context.Context) ([]WorkerInfo, error) {
	ids, err := c.Workers(ctx)
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	out := make([]WorkerInfo, 0, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	defer conn.Close()
	for _, id := range ids {
		_ = conn.Send("GET", WorkerKey(c.ns, id))
		_ = conn.Send("GET", WorkerStartedKey(c.ns, id))
		_ = conn.Send("HGET", HeartbeatKey(c.ns), id)
	}
	if err := conn.Flush(); err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	for _, id := range ids {
		doing, err1 := redis.Bytes(conn.Receive())
		started, err2 := redis.String(conn.Receive())
		beat, err3 := redis.String(conn.Receive())
		for _, e := range []error{err1, err2, err3} {
			if e != nil && !errors.Is(e, redis.ErrNil) {
				return nil, fmt.Errorf("read worker %s: %w", id, e)
			}
		}
		w := WorkerInfo{ID: id, State: "idle", Started: started, Heartbeat: beat}
		w.Host, w.PID, w.Queues, _ = ParseWorkerID(id)
		if w.Queues == nil { // an id Resque cannot parse either
			w.Queues = []string{}
		}
		if doing != nil {
			describeWorking(&w, doing)
		}
		out = append(out, w)
	}
	return out, nil
}

// describeWorking fills w's state from its worker:<id> value.
func describeWorking(w *WorkerInfo, doing []byte) {
	w.State = "working"
	wk, err := ParseWorking(doing)
	if err != nil {
		w.Class = "?"
		return
	}
	w.Queue, w.RunAt = wk.Queue, wk.RunAt
	if wk.Paused {
		w.State, w.Queue = "paused", ""
		return
	}
	w.Class = PayloadClass(wk.Payload)
}

// PayloadClass returns the "class" of a JSON payload, or "" when it has
// none.
func PayloadClass(payload []byte) string {
	var p struct {
		Class string `json:"class"`
	}
	_ = json.Unmarshal(payload, &p)
	return p.Class
}

// Stats is the summary `resqued stats` prints.
type Stats struct {
	Processed int         `json:"processed"`
	Failed    int         `json:"failed"`
	FailedNow int         `json:"failed_list"` // records in the failed list
	Pending   int         `json:"pending"`     // jobs waiting in all queues
	Queues    []QueueSize `json:"queues"`
	Workers   int         `json:"workers"`
	Working   int         `json:"working"`
}

// Stats reads the global counters, queue sizes and worker states.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer conn.Close()
	_ = conn.Send("GET", StatKey(c.ns, "processed"))
	_ = conn.Send("GET", StatKey(c.ns, "failed"))
	_ = conn.Send("LLEN", FailedKey(c.ns))
	if err := conn.Flush(); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	var s Stats
	for _, dst := range []*int{&s.Processed, &s.Failed, &s.FailedNow} {
		n, err := redis.Int(conn.Receive())
		if err != nil && !errors.Is(err, redis.ErrNil) {
			return nil, fmt.Errorf("stats: %w", err)
		}
		*dst = n
	}
	if s.Queues, err = c.QueueSizes(ctx); err != nil {
		return nil, err
	}
	for _, q := range s.Queues {
		s.Pending += q.Size
	}
	ws, err := c.WorkerInfos(ctx)
	if err != nil {
		return nil, err
	}
	s.Workers = len(ws)
	for _, w := range ws {
		if w.State == "working" {
			s.Working++
		}
	}
	return &s, nil
}

// FailedEntry is one record of the failed list with its index. Raw is the
// record as stored; Failure is zero (and Invalid set) when it is not a
// JSON object.
type FailedEntry struct {
	Index int
	Raw   []byte
	Failure
	Class   string
	Invalid bool
}

// FailedRange returns up to count records of the failed list from index
// start on (count <= 0: all of them).
func (c *Client) FailedRange(ctx context.Context, start, count int) ([]FailedEntry, error) {
	stop := -1
	if count > 0 {
		stop = start + count - 1
	}
	raws, err := redis.ByteSlices(c.do(ctx, "LRANGE", FailedKey(c.ns), start, stop))
	if err != nil {
		return nil, fmt.Errorf("list failures: %w", err)
	}
	out := make([]FailedEntry, 0, len(raws))
	for i, r := range raws {
		e := FailedEntry{Index: start + i, Raw: r}
		if err := json.Unmarshal(r, &e.Failure); err != nil {
			e.Invalid = true
		} else {
			e.Class = PayloadClass(e.Payload)
		}
		out = append(out, e)
	}
	return out, nil
}

// ErrNoFailure is returned for an index past the end of the failed list.
var ErrNoFailure = errors.New("no failure at that index")

// FailedCount returns the length of the failed list.
func (c *Client) FailedCount(ctx context.Context) (int, error) {
	n, err := redis.Int(c.do(ctx, "LLEN", FailedKey(c.ns)))
	if err != nil {
		return 0, fmt.Errorf("count failures: %w", err)
	}
	return n, nil
}

// RequeueFailed does what resque-web's retry does to failure index: it
// stamps the record with retried_at (Ruby's format, UTC) in place and
// pushes the payload, byte for byte as recorded, onto the record's
// queue (resque-web calls this "retry"; here the word is kept for the
// job-retry policy of pkg/retry). The LSET, SADD and RPUSH are one MULTI,
// run under WATCH of the failed list so the record stamped is the one
// read; it tries again a few times if the list changes in between. It returns the record as read.
func (c *Client) RequeueFailed(ctx context.Context, index int, now time.Time) (*Failure, error) {
	if index < 0 {
		return nil, ErrNoFailure
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("retry failure %d: %w", index, err)
	}
	defer conn.Close()
	for attempt := 0; attempt < 20; attempt++ {
		f, done, err := c.requeueOnce(conn, index, now)
		if err != nil {
			_, _ = conn.Do("UNWATCH")
			return nil, fmt.Errorf("retry failure %d: %w", index, err)
		}
		if done {
			return f, nil
		}
	}
	return nil, fmt.Errorf("retry failure %d: the failed list kept changing; try again", index)
}

// requeueOnce is one WATCH/MULTI attempt of RequeueFailed; done is false when
// the failed list changed before EXEC and nothing was applied.
func (c *Client) requeueOnce(conn redis.Conn, index int, now time.Time) (f *Failure, done bool, err error) {
	key := FailedKey(c.ns)
	if _, err := conn.Do("WATCH", key); err != nil {
		return nil, false, err
	}
	raw, err := redis.Bytes(conn.Do("LINDEX", key, index))
	if errors.Is(err, redis.ErrNil) {
		return nil, false, ErrNoFailure
	}
	if err != nil {
		return nil, false, err
	}
	f = new(Failure)
	if err := json.Unmarshal(raw, f); err != nil {
		return nil, false, fmt.Errorf("record is not a failure: %w", err)
	}
	if err := ValidateQueueName(f.Queue); err != nil {
		return nil, false, fmt.Errorf("record's queue: %w", err)
	}
	payload, err := recordedPayload(f.Payload)
	if err != nil {
		return nil, false, err
	}
	stamped, err := withRetriedAt(raw, f, now.UTC().Format(FailedAtFormat))
	if err != nil {
		return nil, false, err
	}
	_ = conn.Send("MULTI")
	_ = conn.Send("LSET", key, index, stamped)
	_ = conn.Send("SADD", QueuesKey(c.ns), f.Queue)
	_ = conn.Send("RPUSH", QueueKey(c.ns, f.Queue), payload)
	replies, err := redis.Values(conn.Do("EXEC"))
	if errors.Is(err, redis.ErrNil) {
		return nil, false, nil // the failed list changed: read it again
	}
	if err != nil {
		return nil, false, err
	}
	for _, r := range replies {
		if e, ok := r.(redis.Error); ok {
			return nil, false, e
		}
	}
	return f, true, nil
}

// recordedPayload is the job as it was when it failed: the payload's own
// bytes, or, for a payload that was not JSON (recorded as a JSON string),
// that string.
func recordedPayload(p json.RawMessage) ([]byte, error) {
	if len(p) == 0 || string(p) == "null" {
		return nil, errors.New("record has no payload")
	}
	if p[0] == '"' {
		var s string
		if err := json.Unmarshal(p, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	}
	return p, nil
}

// withRetriedAt returns record raw with retried_at set to ts. A record
// without one keeps every byte and gets ",\"retried_at\":ts" before its
// closing brace, as Ruby's hash would put it last; one retried before is
// written again in Ruby's key order.
func withRetriedAt(raw []byte, f *Failure, ts string) ([]byte, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, err
	}
	if _, ok := keys["retried_at"]; ok || len(keys) == 0 {
		g := *f
		g.RetriedAt = ts
		return g.encode()
	}
	body := strings.TrimRight(string(raw), " \t\r\n")
	if !strings.HasSuffix(body, "}") {
		return nil, errors.New("record is not a JSON object")
	}
	q, err := marshal(ts)
	if err != nil {
		return nil, err
	}
	return []byte(body[:len(body)-1] + `,"retried_at":` + string(q) + "}"), nil
}

// RequeueAllFailed requeues every record of the failed list, in order, and
// returns how many it requeued.
func (c *Client) RequeueAllFailed(ctx context.Context, now time.Time) (int, error) {
	n, err := c.FailedCount(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	for i := 0; i < n; i++ {
		if _, err := c.RequeueFailed(ctx, i, now); err != nil {
			if errors.Is(err, ErrNoFailure) { // the list shrank meanwhile
				break
			}
			return done, err
		}
		done++
	}
	return done, nil
}

// removeScript removes the element at index ARGV[1] of list KEYS[1]:
// LSET it to the unique sentinel ARGV[2], then LREM one sentinel, in one
// atomic step (resque-web does the same in two).
var removeScript = redis.NewScript(1, `
local v = redis.call('LINDEX', KEYS[1], ARGV[1])
if not v then return 0 end
redis.call('LSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('LREM', KEYS[1], 1, ARGV[2])
return 1
`)

// RemoveFailed deletes failure index from the failed list; ErrNoFailure
// when there is none.
func (c *Client) RemoveFailed(ctx context.Context, index int) error {
	if index < 0 {
		return ErrNoFailure
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("remove failure %d: %w", index, err)
	}
	defer conn.Close()
	sentinel := "resqued:removed:" + NewID()
	n, err := redis.Int(removeScript.Do(conn, FailedKey(c.ns), index, sentinel))
	if err != nil {
		return fmt.Errorf("remove failure %d: %w", index, err)
	}
	if n == 0 {
		return ErrNoFailure
	}
	return nil
}

// ClearFailed deletes the failed list and returns how many records it
// held, both in one transaction.
func (c *Client) ClearFailed(ctx context.Context) (int, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return 0, fmt.Errorf("clear failures: %w", err)
	}
	defer conn.Close()
	_ = conn.Send("MULTI")
	_ = conn.Send("LLEN", FailedKey(c.ns))
	_ = conn.Send("DEL", FailedKey(c.ns))
	replies, err := redis.Values(conn.Do("EXEC"))
	if err != nil {
		return 0, fmt.Errorf("clear failures: %w", err)
	}
	n, err := redis.Int(replies[0], nil)
	if err != nil {
		return 0, fmt.Errorf("clear failures: %w", err)
	}
	return n, nil
}

package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// Time formats Resque's tools parse.
const (
	// StartedFormat is Ruby's Time#to_s, used for worker:<id>:started.
	StartedFormat = "2006-01-02 15:04:05 -0700"
	// RunAtFormat is the ISO 8601 UTC form Ruby writes in worker:<id>.
	RunAtFormat = "2006-01-02T15:04:05Z"
	// HeartbeatFormat is Ruby's Time#iso8601 of Redis TIME.
	HeartbeatFormat = "2006-01-02T15:04:05-07:00"
	// FailedAtFormat is Ruby Resque's failed_at.
	FailedAtFormat = "2006/01/02 15:04:05 MST"
)

// WorkerID builds Resque's worker id host:pid:queues, the queues joined
// with commas as configured ("*" stays "*").
func WorkerID(host string, pid int, queues []string) string {
	return host + ":" + strconv.Itoa(pid) + ":" + strings.Join(queues, ",")
}

// ParseWorkerID splits an id on its first two colons, as Resque does.
func ParseWorkerID(id string) (host string, pid int, queues []string, err error) {
	parts := strings.SplitN(id, ":", 3)
	if len(parts) != 3 || parts[2] == "" {
		return "", 0, nil, fmt.Errorf("parse worker id %q: want host:pid:queues", id)
	}
	pid, err = strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, nil, fmt.Errorf("parse worker id %q: bad pid: %w", id, err)
	}
	return parts[0], pid, strings.Split(parts[2], ","), nil
}

// Hostname is os.Hostname, falling back to "localhost".
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// redisTime returns the Redis server's clock, which Ruby uses for
// heartbeats so that hosts with skewed clocks agree.
func redisTime(conn redis.Conn) (time.Time, error) {
	v, err := redis.Int64s(conn.Do("TIME"))
	if err != nil {
		return time.Time{}, err
	}
	if len(v) != 2 {
		return time.Time{}, fmt.Errorf("TIME replied %v", v)
	}
	return time.Unix(v[0], v[1]*1000).UTC(), nil
}

// RegisterWorker records worker id as started at now, with a first
// heartbeat, the way Ruby's Worker#register_worker does.
func (c *Client) RegisterWorker(ctx context.Context, id string, now time.Time) error {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("register worker %s: %w", id, err)
	}
	defer conn.Close()
	beat, err := redisTime(conn)
	if err != nil {
		return fmt.Errorf("register worker %s: %w", id, err)
	}
	_ = conn.Send("MULTI")
	_ = conn.Send("HSET", HeartbeatKey(c.ns), id, beat.Format(HeartbeatFormat))
	_ = conn.Send("SADD", WorkersKey(c.ns), id)
	_ = conn.Send("SET", WorkerStartedKey(c.ns, id), now.Format(StartedFormat))
	if _, err := conn.Do("EXEC"); err != nil {
		return fmt.Errorf("register worker %s: %w", id, err)
	}
	return nil
}

// Heartbeat stamps worker id's heartbeat with the Redis clock.
func (c *Client) Heartbeat(ctx context.Context, id string) error {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("heartbeat %s: %w", id, err)
	}
	defer conn.Close()
	beat, err := redisTime(conn)
	if err != nil {
		return fmt.Errorf("heartbeat %s: %w", id, err)
	}
	if _, err := conn.Do("HSET", HeartbeatKey(c.ns), id, beat.Format(HeartbeatFormat)); err != nil {
		return fmt.Errorf("heartbeat %s: %w", id, err)
	}
	return nil
}

// ErrHoldsJob is returned by UnregisterWorker when worker:<id> still
// holds a job whose outcome was never recorded.
var ErrHoldsJob = errors.New("worker still holds a job")

// UnregisterWorker removes every key of worker id but the global stats,
// as Ruby's Worker#unregister_worker does, and drops the lease held
// under token. It refuses, with ErrHoldsJob, while worker:<id> holds a
// job (not a paused marker): deleting it would lose the job. The caller
// hands such a job to the orphan policy (worker.Pruner.PruneOne) instead.
func (c *Client) UnregisterWorker(ctx context.Context, id, token string) error {
	done, err := c.UnregisterDead(ctx, id, token, nil)
	if err != nil {
		return fmt.Errorf("unregister worker %s: %w", id, err)
	}
	if done == NotUnregistered {
		return fmt.Errorf("unregister worker %s: %w", id, ErrHoldsJob)
	}
	return nil
}

// Working is the value of worker:<id> while a job runs.
type Working struct {
	Queue   string          `json:"queue"`
	RunAt   string          `json:"run_at"`
	Payload json.RawMessage `json:"payload"`
	// Paused marks resqued's paused marker (see PausedMarker), not a job.
	Paused bool `json:"paused,omitempty"`
}

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

// finishScript records a job's outcome only while worker:<id> still
// holds the job (whose SHA-1 is ARGV[1]), so a retry after a lost reply
// never counts twice, and only while no other process holds the worker's
// lease. KEYS: worker:<id>, failed, stat:failed, stat:failed:<id>,
// stat:processed, stat:processed:<id>, the job's status key, the owner
// lease, the job's redelivery count. ARGV[2] is the failure record, or
// empty for success; ARGV[3..5] the status code, time and TTL; ARGV[6]
// "1" when the job has an id to track; ARGV[7..8] the lease token and
// TTL. The order is Ruby Resque's; the php-resque status (if the job is
// tracked) changes in the same step. Returns 1 when recorded, 0 when the
// job was no longer held, -1 when another process owns the worker id.
var finishScript = redis.NewScript(9, status.UpdateLua+ownerLua+`
if not resqued_owner(KEYS[8], ARGV[7], ARGV[8]) then return -1 end
local cur = redis.call('GET', KEYS[1])
if not cur or redis.sha1hex(cur) ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('INCRBY', KEYS[3], 1)
  redis.call('INCRBY', KEYS[4], 1)
end
redis.call('DEL', KEYS[1], KEYS[9])
redis.call('INCRBY', KEYS[5], 1)
redis.call('INCRBY', KEYS[6], 1)
if ARGV[6] == '1' then resqued_status(KEYS[7], ARGV[3], ARGV[4], ARGV[5]) end
return 1
`)

// FinishJob ends worker id's reserved job r: with f == nil it succeeded,
// otherwise f is pushed to the failed list and the failed counters go up.
// Either way the job counts as processed, leaves worker:<id>, its
// redelivery count is dropped, and its status (r.StatusID, if tracked)
// becomes complete or failed, with the 24 h TTL. All in one atomic step,
// and only if worker:<id> still holds r's record; it reports whether it
// did (false: already recorded, or taken over by pruning). It returns
// ErrNotOwner when another process has taken over the worker id.
func (c *Client) FinishJob(ctx context.Context, id string, r *Reserved, f *Failure) (bool, error) {
	var rec []byte
	code := status.Complete
	if f != nil {
		var err error
		if rec, err = f.encode(); err != nil {
			return false, fmt.Errorf("finish job on %s: %w", id, err)
		}
		code = status.Failed
	}
	tracked := "0"
	if r.StatusID != "" {
		tracked = "1"
	}
	token, ttl := r.lease.ownerArgs()
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return false, fmt.Errorf("finish job on %s: %w", id, err)
	}
	defer conn.Close()
	n, err := redis.Int(finishScript.Do(conn,
		WorkerKey(c.ns, id), FailedKey(c.ns), StatKey(c.ns, "failed"), WorkerStatKey(c.ns, "failed", id),
		StatKey(c.ns, "processed"), WorkerStatKey(c.ns, "processed", id), status.Key(c.ns, r.StatusID),
		OwnerKey(c.ns, id), RedeliveriesKey(c.ns, payloadDigest(r.Payload)),
		r.Record, rec, int(code), time.Now().Unix(), status.TTLFor(code), tracked, token, ttl))
	if err != nil {
		return false, fmt.Errorf("finish job on %s: %w", id, err)
	}
	if n < 0 {
		return false, fmt.Errorf("finish job on %s: %w", id, ErrNotOwner)
	}
	return n == 1, nil
}

// releaseScript puts the job held in worker:<id> (SHA-1 ARGV[1]) back at
// the head of its queue (KEYS[2]) as ARGV[2], only while it is still
// there; a tracked job's status (KEYS[3]) goes back to waiting.
var releaseScript = redis.NewScript(3, status.UpdateLua+`
local cur = redis.call('GET', KEYS[1])
if not cur or redis.sha1hex(cur) ~= ARGV[1] then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' then resqued_status(KEYS[3], 1, ARGV[4], 0) end
return 1
`)

// Release gives a reserved job back: it returns to the head of its queue,
// where it was, leaves worker:<id>, and its status is waiting again.
func (c *Client) Release(ctx context.Context, id string, r *Reserved) error {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("release job of %s: %w", id, err)
	}
	defer conn.Close()
	if _, err := releaseScript.Do(conn, WorkerKey(c.ns, id), QueueKey(c.ns, r.Queue), status.Key(c.ns, r.StatusID),
		r.Record, r.Payload, r.StatusID, time.Now().Unix()); err != nil {
		return fmt.Errorf("release job of %s: %w", id, err)
	}
	return nil
}

// Workers returns the registered worker ids.
func (c *Client) Workers(ctx context.Context) ([]string, error) {
	ids, err := redis.Strings(c.do(ctx, "SMEMBERS", WorkersKey(c.ns)))
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return ids, nil
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

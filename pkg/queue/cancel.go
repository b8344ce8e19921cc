package queue

// Cancelling a job from any host (resqued cancel, the dashboard's Cancel
// button): the reads that find it (delayed, queued or running), the
// scripts that remove a job not yet started, and the request list
// (CancelKey) through which the worker running one hears of it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// ErrNotRunning is returned when no worker runs the job asked for, or
// the worker asked for runs no job.
var ErrNotRunning = errors.New("not running")

// ErrNotQueued is returned by RemoveQueued when no queue holds the job.
var ErrNotQueued = errors.New("not queued")

// ErrNotDelayed is returned by RemoveDelayed when the delayed set does
// not hold the job.
var ErrNotDelayed = errors.New("not delayed")

// MaxJobIDLen is the longest job id ValidateJobID accepts.
const MaxJobIDLen = 128

// JobIDWant says what a job id looks like, for error messages.
const JobIDWant = "a job id is the token enqueue --track printed (32 hex digits, php-resque's status token) or the payload's \"id\""

// ValidateJobID refuses what cannot be a job id: an empty one, one
// longer than MaxJobIDLen bytes, one that is not UTF-8 or holds
// whitespace, control characters or quotes. It accepts php-resque's 32
// hex digits and resqued's own ids, and other printable ids enqueuers
// chose.
func ValidateJobID(id string) error {
	switch {
	case id == "":
		return errors.New("job id is empty")
	case len(id) > MaxJobIDLen:
		return fmt.Errorf("job id %.20q...: %d bytes, over %d", id, len(id), MaxJobIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("job id %q: not UTF-8", id)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' || r == '\\' {
			return fmt.Errorf("job id %q: must not contain whitespace, control characters, quotes or backslashes", id)
		}
	}
	return nil
}

// RunningJob is a job some worker's worker:<id> holds, as a canceller
// found it.
type RunningJob struct {
	// Worker is the worker id running it.
	Worker string
	// Queue, Class and ID (the payload's "id", if any) describe the job;
	// Payload is the job as queued.
	Queue, Class, ID string
	Payload          []byte
	// RunAt is when the worker took it, as worker:<id> says.
	RunAt string
	// Record is the SHA-1 (hex) of the worker:<id> value read: a cancel
	// request acts only on that value (RequestCancel), and the worker
	// compares it with its own job's (Reserved.Record).
	Record string
}

// runningJob reads worker:<id> value raw of worker into a RunningJob;
// nil when it holds no job (a paused marker, not a record).
func runningJob(worker string, raw []byte) *RunningJob {
	wk, err := ParseWorking(raw)
	if err != nil || wk.Paused {
		return nil
	}
	j := &RunningJob{Worker: worker, Queue: wk.Queue, RunAt: wk.RunAt, Record: sha1Hex(raw)}
	j.Payload, _ = wk.Original()
	if d, err := Decode(wk.Queue, j.Payload); err == nil {
		j.Class, j.ID = d.Class, d.ID
	}
	return j
}

// FindRunning returns the running job whose payload has "id" id, read
// from every registered worker's worker:<id> in one MGET; ErrNotRunning
// when no worker holds it.
func (c *Client) FindRunning(ctx context.Context, id string) (*RunningJob, error) {
	ids, err := c.Workers(ctx)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("find running job %s: %w", id, ErrNotRunning)
	}
	keys := make([]interface{}, len(ids))
	for i, w := range ids {
		keys[i] = WorkerKey(c.ns, w)
	}
	vals, err := redis.ByteSlices(c.do(ctx, "MGET", keys...))
	if err != nil {
		return nil, fmt.Errorf("find running job %s: %w", id, err)
	}
	for i, v := range vals {
		if v == nil || !bytes.Contains(v, []byte(id)) {
			continue
		}
		if j := runningJob(ids[i], v); j != nil && j.ID == id {
			return j, nil
		}
	}
	return nil, fmt.Errorf("find running job %s: %w", id, ErrNotRunning)
}

// RunningOn returns the job worker runs; ErrNotRunning when it runs
// none (idle, paused, or not a worker at all).
func (c *Client) RunningOn(ctx context.Context, worker string) (*RunningJob, error) {
	raw, err := c.InFlight(ctx, worker)
	if err != nil {
		return nil, err
	}
	var j *RunningJob
	if raw != nil {
		j = runningJob(worker, raw)
	}
	if j == nil {
		return nil, fmt.Errorf("job of worker %s: %w", worker, ErrNotRunning)
	}
	return j, nil
}

// StillRunning reports whether j's worker still holds j, the very
// record a canceller read.
func (c *Client) StillRunning(ctx context.Context, j *RunningJob) (bool, error) {
	raw, err := c.InFlight(ctx, j.Worker)
	if err != nil {
		return false, err
	}
	if raw == nil {
		return false, nil
	}
	return sha1Hex(raw) == j.Record, nil
}

// CancelRequest asks the worker running a job to stop it: the job whose
// worker:<id> record has SHA-1 Record. By is who asked, as the failure
// records it ("alice@web-3 (resqued cancel)"); At when, RFC 3339 UTC.
type CancelRequest struct {
	ID     string `json:"id,omitempty"`
	Record string `json:"record"`
	By     string `json:"by"`
	At     string `json:"at"`
}

// CancelRequestTTL is how long a cancel request waits in CancelKey for
// its worker before it expires.
const CancelRequestTTL = time.Hour

// requestCancelScript pushes cancel request ARGV[2] onto KEYS[2], the
// worker's CancelKey, with expiry ARGV[3] seconds, only while KEYS[1],
// its worker:<id>, still holds the record whose SHA-1 is ARGV[1].
// Returns 1 when pushed, 0 when the worker holds something else.
var requestCancelScript = redis.NewScript(2, `
local cur = redis.call('GET', KEYS[1])
if not cur or redis.sha1hex(cur) ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
`)

// RequestCancel asks j's worker to stop j, on behalf of by, at at: one
// script that checks the worker still holds the record read and pushes
// the request onto the worker's CancelKey. It reports whether it did
// (false: the job ended, or the worker moved on, meanwhile).
func (c *Client) RequestCancel(ctx context.Context, j *RunningJob, by string, at time.Time) (bool, error) {
	req, err := json.Marshal(CancelRequest{ID: j.ID, Record: j.Record, By: by, At: at.UTC().Format(time.RFC3339)})
	if err != nil {
		return false, fmt.Errorf("request cancel on %s: %w", j.Worker, err)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return false, fmt.Errorf("request cancel on %s: %w", j.Worker, err)
	}
	defer conn.Close()
	n, err := redis.Int(requestCancelScript.Do(conn, WorkerKey(c.ns, j.Worker), CancelKey(c.ns, j.Worker),
		j.Record, req, int(CancelRequestTTL/time.Second)))
	if err != nil {
		return false, fmt.Errorf("request cancel on %s: %w", j.Worker, err)
	}
	return n == 1, nil
}

// recentFailures is how far from the failed list's end FindFailure looks.
const recentFailures = 100

// FindFailure returns the failure record, among the last 100, that j's
// worker wrote for j's payload with exception exception; nil when there
// is none.
func (c *Client) FindFailure(ctx context.Context, j *RunningJob, exception string) (*Failure, error) {
	raws, err := redis.ByteSlices(c.do(ctx, "LRANGE", FailedKey(c.ns), -recentFailures, -1))
	if err != nil {
		return nil, fmt.Errorf("find failure of %s: %w", j.Worker, err)
	}
	for i := len(raws) - 1; i >= 0; i-- {
		var f Failure
		if json.Unmarshal(raws[i], &f) != nil || f.Worker != j.Worker || f.Exception != exception {
			continue
		}
		if p, err := recordedPayload(f.Payload); err == nil && bytes.Equal(p, j.Payload) {
			return &f, nil
		}
	}
	return nil, nil
}

// hasID is a quick look, before decoding, at whether entry may be the
// job whose "id" is id.
func hasID(entry []byte, id string) bool {
	return bytes.Contains(entry, []byte(`"id"`)) && bytes.Contains(entry, []byte(id))
}

// removeQueuedScript removes one payload ARGV[1] from queue KEYS[1] and,
// if it was there, fails the status KEYS[2] of a tracked job: code,
// time, TTL and detail ARGV[2..5]. Returns 1 when removed, 0 when the
// queue no longer holds it (a worker took it).
var removeQueuedScript = redis.NewScript(2, status.UpdateLua+`
if redis.call('LREM', KEYS[1], 1, ARGV[1]) ~= 1 then return 0 end
resqued_status(KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return 1
`)

// scanChunk is how many entries one LRANGE of a scan reads.
const scanChunk = 500

// failedDetail is the status detail of a job cancelled with message why.
func failedDetail(why string) ([]byte, error) { return json.Marshal(status.Detail{Error: why}) }

// RemoveQueued takes the job whose payload has "id" id out of whichever
// queue holds it, before any worker starts it, and fails its status (if
// tracked) with error why, in one script. It returns the queue, or
// ErrNotQueued. A job a worker takes between the scan and the removal is
// not removed: ErrNotQueued too, and the caller looks again.
func (c *Client) RemoveQueued(ctx context.Context, id, why string, now time.Time) (string, error) {
	qs, err := c.Queues(ctx)
	if err != nil {
		return "", err
	}
	detail, err := failedDetail(why)
	if err != nil {
		return "", fmt.Errorf("remove queued job %s: %w", id, err)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return "", fmt.Errorf("remove queued job %s: %w", id, err)
	}
	defer conn.Close()
	for _, q := range qs {
		for start := 0; ; start += scanChunk {
			items, err := redis.ByteSlices(conn.Do("LRANGE", QueueKey(c.ns, q), start, start+scanChunk-1))
			if err != nil {
				return "", fmt.Errorf("remove queued job %s: read %s: %w", id, q, err)
			}
			for _, it := range items {
				if !hasID(it, id) {
					continue
				}
				if j, err := Decode(q, it); err != nil || j.ID != id {
					continue
				}
				n, err := redis.Int(removeQueuedScript.Do(conn, QueueKey(c.ns, q), status.Key(c.ns, id),
					it, int(status.Failed), now.Unix(), status.TTLFor(status.Failed), detail))
				if err != nil {
					return "", fmt.Errorf("remove queued job %s from %s: %w", id, q, err)
				}
				if n == 1 {
					return q, nil
				}
				return "", fmt.Errorf("remove queued job %s: %w", id, ErrNotQueued)
			}
			if len(items) < scanChunk {
				break
			}
		}
	}
	return "", fmt.Errorf("remove queued job %s: %w", id, ErrNotQueued)
}

// removeDelayedScript removes one delayed item ARGV[1] from KEYS[1],
// delayed:<ts>, as resque-scheduler's remove_delayed does: the entry
// ARGV[3] leaves the item's timestamps set KEYS[3] once no copy of the
// item is left at ts, and ts (ARGV[2]) leaves the schedule KEYS[2] once
// its list is empty. A tracked job's token ARGV[4] leaves the
// delayed-status hash KEYS[5] and its status KEYS[4] fails: code, time,
// TTL and detail ARGV[5..8]. Returns 1 when removed, 0 when the item is
// no longer there (a scheduler moved it).
var removeDelayedScript = redis.NewScript(5, status.UpdateLua+`
if redis.call('LREM', KEYS[1], 1, ARGV[1]) ~= 1 then return 0 end
if not redis.call('LPOS', KEYS[1], ARGV[1]) then redis.call('SREM', KEYS[3], ARGV[3]) end
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
end
if ARGV[4] ~= '' then
  redis.call('HDEL', KEYS[5], ARGV[4])
  resqued_status(KEYS[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
end
return 1
`)

// RemoveDelayed takes the job whose item has "id" id out of the delayed
// set (resque-scheduler's, which holds resqued's retries too) and fails
// its status (if tracked) with error why, in one script. It returns when
// the job was due, or ErrNotDelayed.
func (c *Client) RemoveDelayed(ctx context.Context, id, why string, now time.Time) (time.Time, error) {
	detail, err := failedDetail(why)
	if err != nil {
		return time.Time{}, fmt.Errorf("remove delayed job %s: %w", id, err)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("remove delayed job %s: %w", id, err)
	}
	defer conn.Close()
	tss, err := redis.Int64s(conn.Do("ZRANGE", DelayedScheduleKey(c.ns), 0, -1))
	if err != nil {
		return time.Time{}, fmt.Errorf("remove delayed job %s: %w", id, err)
	}
	for _, ts := range tss {
		key := DelayedKey(c.ns, ts)
		for start := 0; ; start += scanChunk {
			items, err := redis.ByteSlices(conn.Do("LRANGE", key, start, start+scanChunk-1))
			if err != nil {
				return time.Time{}, fmt.Errorf("remove delayed job %s: read %s: %w", id, key, err)
			}
			for _, it := range items {
				if !hasID(it, id) {
					continue
				}
				q := itemQueue(it)
				j, err := Decode(q, it)
				if err != nil || j.ID != id {
					continue
				}
				n, err := redis.Int(removeDelayedScript.Do(conn, key, DelayedScheduleKey(c.ns), TimestampsKey(c.ns, string(it)),
					status.Key(c.ns, id), DelayedStatusKey(c.ns, DelayedStatusDigest(q, j.Class, j.Args)),
					it, ts, TimestampsEntry(ts), id, int(status.Failed), now.Unix(), status.TTLFor(status.Failed), detail))
				if err != nil {
					return time.Time{}, fmt.Errorf("remove delayed job %s: %w", id, err)
				}
				if n == 1 {
					return time.Unix(ts, 0).UTC(), nil
				}
				return time.Time{}, fmt.Errorf("remove delayed job %s: %w", id, ErrNotDelayed)
			}
			if len(items) < scanChunk {
				break
			}
		}
	}
	return time.Time{}, fmt.Errorf("remove delayed job %s: %w", id, ErrNotDelayed)
}

// CancelWatcher waits for cancel requests to one worker (CancelKey), on
// a connection of its own that a cancelled context unblocks at once (as
// Waker's). It is used by one goroutine at a time; Close it when done.
type CancelWatcher struct{ w Waker }

// CancelWatcher returns a CancelWatcher for worker id. It dials nothing
// until its first Next.
func (c *Client) CancelWatcher(worker string) *CancelWatcher {
	return &CancelWatcher{Waker{c: c, key: CancelKey(c.ns, worker), what: "wait for cancel requests of " + worker}}
}

// Next waits up to timeout for a cancel request and takes it: nil when
// none came in time or ctx ended. A request that is not valid JSON is
// returned as an error wrapping ErrInvalidPayload, taken all the same.
func (cw *CancelWatcher) Next(ctx context.Context, timeout time.Duration) (*CancelRequest, error) {
	got, err := cw.w.Wait(ctx, timeout)
	if err != nil || !got {
		return nil, err
	}
	var req CancelRequest
	if err := json.Unmarshal(cw.w.got, &req); err != nil || req.Record == "" {
		return nil, fmt.Errorf("cancel request %q: %w", abbrev(cw.w.got), ErrInvalidPayload)
	}
	return &req, nil
}

// Close releases the watcher's connection.
func (cw *CancelWatcher) Close() error { return cw.w.Close() }

// Describe says who asked and when, as a failure's error puts it:
// "cancelled by alice@web-3 (resqued cancel) at 2026-12-01T16:40:00Z".
func (r *CancelRequest) Describe() string {
	return "cancelled by " + strings.TrimSpace(r.By) + " at " + r.At
}

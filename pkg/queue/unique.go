package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// Unique jobs (docs/operations.md, "Unique jobs"). A unique job's lock is
// resque-loner's key, UniqueLockKey, holding "1", so that Ruby apps using
// resque-loner and resqued refuse each other's duplicates; beside it,
// UniqueHolderKey names the job that holds it. The lock is taken when the
// job is enqueued (or delayed), in the same script as the push, taken
// again (or confirmed) by the worker as the job starts, and deleted when
// the job ends, whatever the outcome, but only while it is still that
// job's. It expires after the job's TTL, so a lost job never locks its
// class and args for ever.

// DefaultUniqueTTL is how long a unique job's lock lives when the job
// says "unique": true, or enqueue --unique gives no --unique-ttl.
const DefaultUniqueTTL = 24 * time.Hour

// ErrDuplicate is what Enqueue, Delay and ClaimUnique return (wrapped in
// a *DuplicateError) when another copy of a unique job holds its lock.
var ErrDuplicate = errors.New("duplicate unique job")

// DuplicateError says which job holds the lock a unique job wanted.
type DuplicateError struct {
	// Queue is the queue whose lock is held.
	Queue string
	// Holder is the id of the job holding the lock; empty when the lock
	// was taken by another tool (a Ruby app using resque-loner), which
	// records no id.
	Holder string
}

func (e *DuplicateError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("a copy of this job is already queued, delayed or running on %s (its resque-loner lock was taken by another app, which records no job id)", e.Queue)
	}
	return fmt.Sprintf("a copy of this job is already queued, delayed or running on %s: job %s holds its lock", e.Queue, e.Holder)
}

// Is makes a DuplicateError match ErrDuplicate.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// ValidateUniqueTTL checks a unique job's TTL: whole seconds, at least
// one (Redis expiries are in seconds, and a lock that expires at once
// locks nothing).
func ValidateUniqueTTL(ttl time.Duration) error {
	if ttl < time.Second {
		return fmt.Errorf("unique TTL %s: want at least 1s; the lock must outlive the job's wait and run", ttl)
	}
	if ttl%time.Second != 0 {
		return fmt.Errorf("unique TTL %s: want whole seconds", ttl)
	}
	return nil
}

// ParseUnique reads a payload's "unique" field (Job.Unique): true is
// DefaultUniqueTTL, a positive whole number that many seconds; absent,
// null or false is not unique (ok false). Anything else (0, a negative
// number, a fraction, a string) is an error in the payload's writer's
// words, matching ErrInvalidPayload.
func ParseUnique(raw json.RawMessage) (ttl time.Duration, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "", "null", "false":
		return 0, false, nil
	case "true":
		return DefaultUniqueTTL, true, nil
	}
	n, perr := strconv.ParseInt(string(raw), 10, 64)
	if perr != nil || n < 1 || n > int64(100*365*24*time.Hour/time.Second) {
		return 0, false, invalidf(`payload's "unique" is %s: want true, or the lock's TTL in whole seconds, at least 1`, abbrev(raw))
	}
	return time.Duration(n) * time.Second, true, nil
}

// WithUnique returns payload (a JSON object) with a "unique" field of
// ttl seconds added at its end, so that the worker knows the job holds a
// lock to release. A payload that already has "unique" is returned as
// it is.
func WithUnique(payload []byte, ttl time.Duration) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil || fields == nil {
		return nil, invalidf("payload is not %s", payloadWant)
	}
	if _, ok := fields["unique"]; ok {
		return payload, nil
	}
	p := bytes.TrimRight(payload, " \t\r\n")
	body := bytes.TrimRight(p[:len(p)-1], " \t\r\n")
	out := make([]byte, 0, len(p)+24)
	out = append(out, body...)
	if len(fields) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"unique":`...)
	out = strconv.AppendInt(out, int64(ttl/time.Second), 10)
	return append(out, '}'), nil
}

// uniqueTakeLua defines resqued_unique_take(lock, holder, id, ttl): when
// lock exists it returns who holds it (the holder key's id, or "" for a
// lock without one: resque-loner's own); else it takes the lock for job
// id, both keys expiring ttl seconds on, and returns false.
const uniqueTakeLua = `
local function resqued_unique_take(lock, holder, id, ttl)
  if redis.call('EXISTS', lock) == 1 then
    return redis.call('GET', holder) or ''
  end
  redis.call('SET', lock, '1', 'EX', ttl)
  redis.call('SET', holder, id, 'EX', ttl)
  return false
end
`

// enqueueUniqueScript is Enqueue for a unique job: it takes the lock
// (KEYS[1] UniqueLockKey, KEYS[2] UniqueHolderKey) for job ARGV[1] with
// TTL ARGV[2] and, only then, sets the status KEYS[5] to ARGV[5] when
// ARGV[4] is "1", adds queue ARGV[6] to KEYS[3] queues and pushes ARGV[3]
// onto KEYS[4] queue:<q>. Returns {1, id} when enqueued, {0, holder}
// when another copy holds the lock (nothing written).
var enqueueUniqueScript = redis.NewScript(5, uniqueTakeLua+`
local h = resqued_unique_take(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if h then return {0, h} end
if ARGV[4] == '1' then redis.call('SET', KEYS[5], ARGV[5]) end
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('RPUSH', KEYS[4], ARGV[3])
return {1, ARGV[1]}
`)

// uniqueArgs checks opt for a unique enqueue of payload to q and returns
// the lock's digest and the payload with its "unique" field.
func uniqueArgs(q string, payload []byte, opt EnqueueOptions) (digest string, marked []byte, err error) {
	if err := ValidateUniqueTTL(opt.Unique); err != nil {
		return "", nil, err
	}
	if opt.ID == "" {
		return "", nil, errors.New("a unique job needs a job id")
	}
	j, err := Decode(q, payload)
	if err != nil {
		return "", nil, err
	}
	if digest, err = UniqueDigest(j.Class, j.Args); err != nil {
		return "", nil, err
	}
	marked, err = WithUnique(payload, opt.Unique)
	return digest, marked, err
}

// enqueueUnique is Enqueue with opt.Unique set.
func (c *Client) enqueueUnique(ctx context.Context, q string, payload []byte, opt EnqueueOptions) error {
	digest, payload, err := uniqueArgs(q, payload, opt)
	if err != nil {
		return fmt.Errorf("enqueue to %s: %w", q, err)
	}
	tracked := "0"
	if opt.Track {
		tracked = "1"
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("enqueue to %s: %w", q, err)
	}
	defer conn.Close()
	v, err := redis.Values(enqueueUniqueScript.Do(conn,
		UniqueLockKey(c.ns, q, digest), UniqueHolderKey(c.ns, q, digest), QueuesKey(c.ns), QueueKey(c.ns, q), status.Key(c.ns, opt.ID),
		opt.ID, int64(opt.Unique/time.Second), payload, tracked, initialStatus(opt.Now), q))
	if err != nil {
		return fmt.Errorf("enqueue to %s: %w", q, err)
	}
	if err := duplicate(q, v); err != nil {
		return err
	}
	return c.replicated(conn, "enqueue to "+q, opt.ID)
}

// duplicate reads a {done, id} reply of a script that took a unique
// lock: nil when done, else the *DuplicateError naming the holder.
func duplicate(q string, v []interface{}) error {
	if len(v) != 2 {
		return fmt.Errorf("enqueue to %s: unexpected reply %v", q, v)
	}
	if n, _ := redis.Int(v[0], nil); n == 1 {
		return nil
	}
	holder, _ := redis.String(v[1], nil)
	return &DuplicateError{Queue: q, Holder: holder}
}

// delayUniqueScript is delayScript (KEYS[1..7], ARGV[1..9]) for a
// unique job: it first takes the lock (KEYS[8] UniqueLockKey, KEYS[9]
// UniqueHolderKey) for job ARGV[10], with TTL ARGV[11]. Returns 1 when
// stored, {0, holder} when another copy holds the lock (nothing
// written).
var delayUniqueScript = redis.NewScript(9, wakeLua+uniqueTakeLua+`
local h = resqued_unique_take(KEYS[8], KEYS[9], ARGV[10], ARGV[11])
if h then return {0, h} end
`+delayLua)

// delayUnique runs delayUniqueScript with delayScript's args, for a job
// due at ts: its lock lives until ts plus opt.Unique.
func (c *Client) delayUnique(conn redis.Conn, q, digest string, ts int64, opt EnqueueOptions, args []interface{}) error {
	ttl := max(ts-time.Now().Unix(), 0) + int64(opt.Unique/time.Second)
	all := make([]interface{}, 0, len(args)+4)
	all = append(all, args[:7]...)
	all = append(all, UniqueLockKey(c.ns, q, digest), UniqueHolderKey(c.ns, q, digest))
	all = append(all, args[7:]...)
	all = append(all, opt.ID, ttl)
	v, err := delayUniqueScript.Do(conn, all...)
	if err != nil {
		return fmt.Errorf("delay job for %s: %w", q, err)
	}
	if list, ok := v.([]interface{}); ok {
		return duplicate(q, list)
	}
	return c.replicated(conn, "delay job for "+q, opt.ID)
}

// claimUniqueScript takes or confirms, as a job starts, the lock
// (KEYS[1] UniqueLockKey, KEYS[2] UniqueHolderKey) for job ARGV[1],
// both keys expiring ARGV[2] seconds on. The job may run when the lock
// is free, already its own, or a lock without a holder (resque-loner's:
// a Ruby app enqueued this job, and resque-loner would drop the lock at
// this point); it returns "" and the lock is then this job's. When
// another job holds the lock it returns that job's id and changes
// nothing.
var claimUniqueScript = redis.NewScript(2, `
local h = redis.call('GET', KEYS[2])
if h and h ~= ARGV[1] and redis.call('EXISTS', KEYS[1]) == 1 then return h end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return ''
`)

// ClaimUnique takes or confirms unique job j's lock for holder (the job's
// id) as it starts, for ttl (ParseUnique): the TTL counts again from the
// start of each run. When another job holds the lock the error is a
// *DuplicateError naming it (errors.Is ErrDuplicate), and j must not
// run. An error matching ErrInvalidPayload means j's args cannot be
// digested as resque-loner does.
func (c *Client) ClaimUnique(ctx context.Context, j *Job, holder string, ttl time.Duration) error {
	digest, err := j.uniqueDigestOf()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	v, err := redis.String(c.script(ctx, claimUniqueScript, UniqueLockKey(c.ns, j.Queue, digest), UniqueHolderKey(c.ns, j.Queue, digest),
		holder, int64(ttl/time.Second)))
	if err != nil {
		return fmt.Errorf("claim unique lock on %s: %w", j.Queue, err)
	}
	if v != "" {
		return &DuplicateError{Queue: j.Queue, Holder: v}
	}
	return nil
}

// UniqueHolder is the holder a unique job j's lock is taken under by
// the worker whose id is worker: the job's id, or for a job without one
// (a Ruby app's, enqueued with resque-loner) "worker:<id>", which the
// pruner can name again when that worker dies (UnregisterDead). A
// worker runs one job at a time, so the name is the job's while it runs.
func UniqueHolder(j *Job, worker string) string {
	if j.ID != "" {
		return j.ID
	}
	return "worker:" + worker
}

// UniqueLocks counts the unique locks resqued's jobs hold now (their
// UniqueHolderKey; locks a Ruby app's resque-loner took have none and
// are not counted). It SCANs the keyspace, COUNT 1000 a step: about one
// round trip per thousand keys in the database, for `resqued stats` and
// a /metrics scrape, never for a job.
func (c *Client) UniqueLocks(ctx context.Context) (int, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return 0, fmt.Errorf("count unique locks: %w", err)
	}
	defer conn.Close()
	seen := map[string]struct{}{} // SCAN may return a key twice
	if err := scanPrefix(ctx, conn, UniqueHolderPrefix(c.ns), func(k string) { seen[k] = struct{}{} }); err != nil {
		return 0, fmt.Errorf("count unique locks: %w", err)
	}
	return len(seen), nil
}

// uniqueDigestOf is UniqueDigest of j, worked out once per job: the
// claim of its lock and the release both need it.
func (j *Job) uniqueDigestOf() (string, error) {
	if j.uniqueDigest == "" {
		d, err := UniqueDigest(j.Class, j.Args)
		if err != nil {
			return "", err
		}
		j.uniqueDigest = d
	}
	return j.uniqueDigest, nil
}

// releaseUniqueScript deletes the lock KEYS[1] and its holder KEYS[2]
// only while the holder is still job ARGV[1] (compare-and-delete), so a
// job that ends after its lock expired never frees a newer copy's.
// Returns 1 when deleted, 0 when the lock was not the job's.
var releaseUniqueScript = redis.NewScript(2, `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
`)

// ReleaseUnique deletes unique job j's lock, held by holder, as the job
// ends. It reports whether it did: false when the lock had expired or
// was another job's by then.
func (c *Client) ReleaseUnique(ctx context.Context, j *Job, holder string) (bool, error) {
	digest, err := j.uniqueDigestOf()
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	n, err := redis.Int(c.script(ctx, releaseUniqueScript, UniqueLockKey(c.ns, j.Queue, digest), UniqueHolderKey(c.ns, j.Queue, digest), holder))
	if err != nil {
		return false, fmt.Errorf("release unique lock on %s: %w", j.Queue, err)
	}
	return n == 1, nil
}

// script runs s with keysAndArgs on a connection of the pool.
func (c *Client) script(ctx context.Context, s *redis.Script, keysAndArgs ...interface{}) (interface{}, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return s.Do(conn, keysAndArgs...)
}

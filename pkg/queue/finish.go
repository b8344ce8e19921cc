package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// finishScript records a job's outcome only while worker:<id> still
// holds the job (whose SHA-1 is ARGV[1]), so a retry after a lost reply
// never counts twice, and only while no other process holds the worker's
// lease. KEYS: worker:<id>, failed, stat:failed, stat:failed:<id>,
// stat:processed, stat:processed:<id>, the job's status key, the owner
// lease, the job's redelivery count. ARGV[2] is the failure record, or
// empty for success; ARGV[3..5] the status code, time and TTL; ARGV[6]
// "1" when the job has an id to track; ARGV[7..8] the lease token and
// TTL; ARGV[9] the status detail (an encoded status.Detail: the error of
// a failure, the result of a success), or empty. The order is Ruby
// Resque's; the php-resque status (if the job is tracked) and its detail
// change in the same step. Returns 1 when recorded, 0 when the job was no
// longer held, -1 when another process owns the worker id.
var finishScript = redis.NewScript(9, status.UpdateLua+ownerLua+finishLua+`
return resqued_finish()
`)

// finishLua defines resqued_finish, the outcome step of finishScript and
// finishReserveScript, on their common KEYS[1..9] and ARGV[1..9].
const finishLua = `
local function resqued_finish()
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
  if ARGV[6] == '1' then resqued_status(KEYS[7], ARGV[3], ARGV[4], ARGV[5], ARGV[9]) end
  return 1
end
`

// finishReserveScript records one job's outcome as finishScript does
// (KEYS[1..9], ARGV[1..9]) and, unless another process owns the worker
// id, reserves the next job as reserveScript does, in the same step: one
// round trip per job instead of two. KEYS[10] is the pause-all-workers
// flag, KEYS[11] DelayedStatusAnyKey, KEYS[12] the foreseen job's status
// key, KEYS[13..] the queues, each followed by its pause key; ARGV[10] run_at, ARGV[11] the queue key
// prefix, ARGV[12] the class filter flag, ARGV[13] the foreseen job's id,
// ARGV[14] the time, ARGV[15] the limits, ARGV[16..] the classes.
// Returns {finishScript's reply, resqued_reserve's reply (or false)}.
var finishReserveScript = redis.NewScript(-1, status.UpdateLua+status.MarkLua+ownerLua+finishLua+queuePauseLua+holdLua+limitsLua+reserveLua+`
local n = resqued_finish()
if n < 0 then return {n, false} end
return {n, resqued_reserve(KEYS[1], KEYS[10], KEYS[11], KEYS[12], 13, ARGV[10], ARGV[11], ARGV[12], '0', ARGV[13], ARGV[14], 16, ARGV[15])}
`)

// FinishJob ends reserved job r as o says: a success, or a failure
// pushed to the failed list (the failed counters go up). Either way the
// job counts as processed, leaves worker:<id>, its redelivery count is
// dropped, and its status (r.ID, if tracked) becomes complete or failed,
// with the 24 h TTL and o's error or result as detail. All in one atomic
// step, and only if worker:<id> still holds r's record; it reports
// whether it did (false: already recorded, or taken over by pruning). It
// returns ErrNotOwner when another process has taken over the worker id.
func (c *Client) FinishJob(ctx context.Context, r *Reserved, o Outcome) (bool, error) {
	argv, err := c.finishArgv(make([]interface{}, 0, 18), r, o)
	if err != nil {
		return false, err
	}
	args := append(c.finishKeys(make([]interface{}, 0, 18), r), argv...)
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return false, fmt.Errorf("finish job on %s: %w", r.Worker, err)
	}
	defer conn.Close()
	sent := time.Now()
	v, err := finishScript.Do(conn, args...)
	if err != nil {
		return false, fmt.Errorf("finish job on %s: %w", r.Worker, err)
	}
	r.lease.renewedAt(sent, v)
	recorded, err := finished(r, v)
	if err == nil {
		c.reportReplicated(conn, "finish job", r.ID)
	}
	return recorded, err
}

// finished reads finishScript's reply v about r.
func finished(r *Reserved, v interface{}) (bool, error) {
	n, err := redis.Int(v, nil)
	if err != nil {
		return false, fmt.Errorf("finish job on %s: %w", r.Worker, err)
	}
	if n < 0 {
		return false, fmt.Errorf("finish job on %s: %w", r.Worker, ErrNotOwner)
	}
	return n == 1, nil
}

// finishKeys appends finishScript's KEYS for r to dst.
func (c *Client) finishKeys(dst []interface{}, r *Reserved) []interface{} {
	id := r.Worker
	return append(dst,
		WorkerKey(c.ns, id), FailedKey(c.ns), StatKey(c.ns, "failed"), WorkerStatKey(c.ns, "failed", id),
		StatKey(c.ns, "processed"), WorkerStatKey(c.ns, "processed", id), status.Key(c.ns, r.ID),
		OwnerKey(c.ns, id), RedeliveriesKey(c.ns, payloadDigest(r.Payload)))
}

// finishArgv appends finishScript's ARGV for r's outcome o to dst.
func (c *Client) finishArgv(dst []interface{}, r *Reserved, o Outcome) ([]interface{}, error) {
	var rec []byte
	code := status.Complete
	if o.Failed() {
		var err error
		if rec, err = o.failure(r.Payload, r.Worker, r.Queue).encode(); err != nil {
			return nil, fmt.Errorf("finish job on %s: %w", r.Worker, err)
		}
		code = status.Failed
	}
	tracked := "0"
	if r.ID != "" {
		tracked = "1"
	}
	detail, err := o.detail()
	if err != nil {
		return nil, fmt.Errorf("finish job on %s: %w", r.Worker, err)
	}
	token, ttl := r.lease.ownerArgs()
	return append(dst, r.Record, rec, int(code), time.Now().Unix(), status.TTLFor(code), tracked, token, ttl, detail), nil
}

// FinishAndReserve records r's outcome o as FinishJob does and, in the
// same atomic step and round trip, reserves the next job from queues as
// Reserve does (opt.HeldOnly is ignored): the path of a busy worker.
// recorded is FinishJob's report; next is the job taken, or nil with
// err ErrNoJob or ErrPausedAll (the outcome was recorded all the same).
// With ErrNotOwner nothing was recorded or taken. On any other error
// nobody knows whether the step happened: FinishJob(r) is then safe to
// repeat (it records nothing twice), and the next Reserve resumes a job
// this step may have taken.
func (f *Fetcher) FinishAndReserve(ctx context.Context, r *Reserved, o Outcome, queues []string, opt ReserveOptions) (recorded bool, next *Reserved, err error) {
	f.skipped, f.heldBack = nil, false
	if len(queues) == 0 {
		ok, err := f.c.FinishJob(ctx, r, o)
		if err != nil {
			return ok, nil, err
		}
		return ok, nil, ErrNoJob
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	// One slice, its exact size: the key count, finishScript's 9 KEYS,
	// the reserve step's 3 and the queues with their pause keys,
	// finishScript's 9 ARGV, the reserve step's 6 and the classes.
	keys := make([]interface{}, 0, 1+9+3+2*len(queues)+9+6+len(opt.Classes))
	keys = append(keys, 9+3+2*len(queues))
	keys = append(f.c.finishKeys(keys, r), PauseAllKey(f.c.ns), DelayedStatusAnyKey(f.c.ns), status.Key(f.c.ns, f.predicted))
	keys = f.appendQueueKeys(keys, queues)
	keys, err = f.c.finishArgv(keys, r, o)
	if err != nil {
		return false, nil, err
	}
	keys = append(keys, now.UTC().Format(RunAtFormat), QueuePrefix(f.c.ns), classFilter(opt), f.predicted, now.Unix(), f.limitsArg(opt.Limits, now))
	for _, c := range opt.Classes {
		keys = append(keys, c)
	}
	conn, err := f.jobConn(ctx)
	if err != nil {
		return false, nil, fmt.Errorf("finish job on %s: %w", r.Worker, err)
	}
	sent := time.Now()
	v, err := redis.Values(finishReserveScript.Do(conn, keys...))
	if err == nil && len(v) != 2 {
		err = errors.New("unexpected reply")
	}
	if err != nil {
		return false, nil, fmt.Errorf("finish job on %s: %w", r.Worker, err)
	}
	r.lease.renewedAt(sent, v[0])
	if recorded, err = finished(r, v[0]); err != nil {
		return recorded, nil, err
	}
	// r's outcome is recorded: a slot it held is freed by the acquire
	// of a next job of a limited class, in that same step.
	f.doneWith(r)
	next, err = f.taken(conn, queues, v[1], now, opt)
	if errors.Is(err, errLimited) {
		next, err = f.Reserve(ctx, queues, opt)
	}
	f.done = nil
	if next == nil {
		// taken waits for replicas after a job it took; here only the
		// outcome was written.
		f.c.reportReplicated(conn, "finish job", r.ID)
	}
	return recorded, next, err
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

// Release gives reserved job r back: it returns to the head of its
// queue, where it was, leaves worker:<id>, and its status is waiting
// again.
func (c *Client) Release(ctx context.Context, r *Reserved) error {
	id := r.Worker
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("release job of %s: %w", id, err)
	}
	defer conn.Close()
	if _, err := releaseScript.Do(conn, WorkerKey(c.ns, id), QueueKey(c.ns, r.Queue), status.Key(c.ns, r.ID),
		r.Record, r.Payload, r.ID, time.Now().Unix()); err != nil {
		return fmt.Errorf("release job of %s: %w", id, err)
	}
	c.reportReplicated(conn, "release job", r.ID)
	return nil
}

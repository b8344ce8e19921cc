package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// Orphan says what becomes of a dead worker's in-flight job.
type Orphan struct {
	// Record is the worker:<id> value that was read; the cleanup only
	// happens if it is still there, so two pruners never both act.
	Record []byte
	// Queue and Payload are the job's, as worker:<id> held them (Payload
	// is the whole record when it could not be parsed).
	Queue   string
	Payload []byte
	// Fail, when set, fails the job with this outcome (Ruby's
	// Resque::PruneDeadWorkerDirtyExit). Otherwise Requeue puts Payload
	// back at the head of Queue; with neither (a paused marker), nothing
	// becomes of it.
	Fail    *Outcome
	Requeue bool
	// StatusID is the job's status token, if tracked: failed (with the
	// 24 h TTL and the failure as its error) when the job fails, waiting
	// when it is requeued.
	StatusID string
	// MaxRedeliveries bounds how often one job is requeued from dead
	// workers: each requeue counts (RedeliveriesKey), and past the limit
	// the job fails with Poison instead. Negative means no limit.
	MaxRedeliveries int
	Poison          *Outcome
	// Unique is the job, decoded, when it holds a unique lock (its
	// payload's "unique", or its class's in the handlers config). When
	// it fails here (Fail, or Poison), its lock is deleted in the same
	// step, while the lock's holder is still the job's (UniqueHolder
	// with the dead worker's id: compare-and-delete, as ReleaseUnique).
	// When it is requeued the lock stays, for its next run; a job
	// without an id leaves only resque-loner's "1", which its next run
	// takes over.
	Unique *Job
}

// RedeliveriesTTL is how long a job's redelivery count is kept after its
// last redelivery.
const RedeliveriesTTL = 7 * 24 * time.Hour

// unregisterDeadScript removes a dead worker and settles its job. It
// refuses (-1) while another process holds the worker's lease (ARGV[6]
// is the caller's own token, or empty), and (0) when worker:<id> no
// longer holds ARGV[2] (with ARGV[2] empty: holds a job, not nothing or
// the paused marker). KEYS: 1 worker:<id>, 2 workers, 3 started,
// 4 heartbeat, 5 stat:processed:<id>, 6 stat:failed:<id>, 7 failed,
// 8 stat:failed, 9 the job's queue, 10 the owner lease, 11 stat:processed,
// 12 the status key, 13 the redelivery count. ARGV: 1 id, 2 record,
// 3 mode (none, fail, requeue), 4 failure record, 5 payload, 6 token,
// 7 "1" if tracked, 8 now, 9 max redeliveries (-1: no limit), 10 the
// poison failure record, 11 the count's TTL, 12 the failed status TTL,
// 13 and 14 the error the status gets when the job fails or is poison.
// A unique job's lock (KEYS 14 UniqueLockKey, 15 UniqueHolderKey) is
// deleted when the job fails while its holder is still ARGV[15] (empty:
// not a unique job); when it is requeued and ARGV[16] is "1" (the holder
// was the dead worker's, the job having no id) only the holder goes.
// Returns 1, or 2 when a requeue turned into a poison failure.
var unregisterDeadScript = redis.NewScript(15, status.UpdateLua+`
local owner = redis.call('GET', KEYS[10])
if owner and owner ~= ARGV[6] then return -1 end
local cur = redis.call('GET', KEYS[1])
if ARGV[2] == '' then
  if cur then
    local ok, rec = pcall(cjson.decode, cur)
    if not (ok and type(rec) == 'table' and rec['paused'] == true) then return 0 end
  end
elseif cur ~= ARGV[2] then
  return 0
end
local mode = ARGV[3]
local rec = ARGV[4]
local detail = ARGV[13]
if mode == 'requeue' and tonumber(ARGV[9]) >= 0 then
  local n = redis.call('INCR', KEYS[13])
  redis.call('EXPIRE', KEYS[13], ARGV[11])
  if n > tonumber(ARGV[9]) then
    mode, rec, detail = 'poison', ARGV[10], ARGV[14]
    redis.call('DEL', KEYS[13])
  end
end
if ARGV[15] ~= '' and redis.call('GET', KEYS[15]) == ARGV[15] then
  if mode == 'fail' or mode == 'poison' then
    redis.call('DEL', KEYS[14], KEYS[15])
  elseif mode == 'requeue' and ARGV[16] == '1' then
    redis.call('DEL', KEYS[15])
  end
end
if mode == 'fail' or mode == 'poison' then
  redis.call('RPUSH', KEYS[7], rec)
  redis.call('INCRBY', KEYS[8], 1)
  redis.call('INCRBY', KEYS[11], 1)
  if ARGV[7] == '1' then resqued_status(KEYS[12], 3, ARGV[8], ARGV[12], detail) end
elseif mode == 'requeue' then
  redis.call('LPUSH', KEYS[9], ARGV[5])
  if ARGV[7] == '1' then resqued_status(KEYS[12], 1, ARGV[8], 0) end
end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[3], KEYS[5], KEYS[6], KEYS[10])
redis.call('HDEL', KEYS[4], ARGV[1])
if mode == 'poison' then return 2 end
return 1
`)

// Unregistered says what UnregisterDead did.
type Unregistered int

const (
	// NotUnregistered: nothing was done, the worker:<id> value was not
	// the one expected (someone else pruned it first, or, with no
	// Orphan, it holds a job).
	NotUnregistered Unregistered = iota
	// UnregisteredOK: the worker is gone and its job dealt with as asked.
	UnregisteredOK
	// UnregisteredPoison: the job was to be requeued but had been
	// redelivered MaxRedeliveries times already, so it failed as Poison.
	UnregisteredPoison
)

// UnregisterDead removes a dead worker's keys and deals with its
// in-flight job as o says (o nil: it had none), in one atomic step. token
// is the lease token the caller acts under: the dead worker's own (a
// supervisor's child, or this process's previous self), or "" to act
// only while nobody holds the id's lease. It returns ErrIDInUse, doing
// nothing, while another process holds that lease.
func (c *Client) UnregisterDead(ctx context.Context, id, token string, o *Orphan) (Unregistered, error) {
	mode, expect, rec, q, payload, sid, maxRe := "none", []byte{}, []byte{}, "", []byte{}, "", -1
	poison, detail, poisonDetail := []byte{}, []byte{}, []byte{}
	if o != nil {
		expect, q, payload, sid, maxRe = o.Record, o.Queue, o.Payload, o.StatusID, o.MaxRedeliveries
		// encode is the failed-list record of the job ending as out, and
		// the error its status gets.
		encode := func(out *Outcome) (rec, detail []byte, err error) {
			if rec, err = out.failure(payload, id, q).encode(); err != nil {
				return nil, nil, err
			}
			detail, err = out.detail()
			return rec, detail, err
		}
		var err error
		switch {
		case o.Fail != nil:
			mode = "fail"
			rec, detail, err = encode(o.Fail)
		case o.Requeue:
			mode = "requeue"
			if o.Poison != nil {
				poison, poisonDetail, err = encode(o.Poison)
			} else {
				maxRe = -1
			}
		}
		if err != nil {
			return NotUnregistered, fmt.Errorf("unregister dead worker %s: %w", id, err)
		}
	}
	tracked := "0"
	if sid != "" {
		tracked = "1"
	}
	// The lock's keys are declared even when there is none to release
	// (digest "": keys never written), as the status key is.
	digest, holder, ownToken := "", "", "0"
	if o != nil && o.Unique != nil {
		if d, err := UniqueDigest(o.Unique.Class, o.Unique.Args); err == nil {
			digest, holder = d, UniqueHolder(o.Unique, id)
			if o.Unique.ID == "" {
				ownToken = "1"
			}
		}
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return NotUnregistered, fmt.Errorf("unregister dead worker %s: %w", id, err)
	}
	defer conn.Close()
	n, err := redis.Int(unregisterDeadScript.Do(conn,
		WorkerKey(c.ns, id), WorkersKey(c.ns), WorkerStartedKey(c.ns, id), HeartbeatKey(c.ns),
		WorkerStatKey(c.ns, "processed", id), WorkerStatKey(c.ns, "failed", id),
		FailedKey(c.ns), StatKey(c.ns, "failed"), QueueKey(c.ns, q), OwnerKey(c.ns, id),
		StatKey(c.ns, "processed"), status.Key(c.ns, sid), RedeliveriesKey(c.ns, payloadDigest(payload)),
		UniqueLockKey(c.ns, q, digest), UniqueHolderKey(c.ns, q, digest),
		id, expect, mode, rec, payload, token, tracked, time.Now().Unix(), maxRe, poison,
		int(RedeliveriesTTL/time.Second), status.TTLFor(status.Failed), detail, poisonDetail, holder, ownToken))
	if err != nil {
		return NotUnregistered, fmt.Errorf("unregister dead worker %s: %w", id, err)
	}
	if n < 0 {
		return NotUnregistered, fmt.Errorf("unregister dead worker %s: %w", id, ErrIDInUse)
	}
	c.reportReplicated(conn, "unregister dead worker", id)
	return Unregistered(n), nil
}

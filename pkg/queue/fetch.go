package queue

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/snooze"
	"github.com/resqued/resqued/pkg/status"
)

// Fetcher takes jobs off queues for one worker, reliably: a job moves from
// its queue into the worker's worker:<id> key in one atomic step, and
// leaves it only in the same transaction that records its outcome. A job
// is therefore always either queued or in some worker's worker:<id>, never
// only in a process's memory. worker:<id> is Ruby Resque's own record of
// a running job, so resque-web shows it, and pruning a dead worker finds
// its job there.
//
// A Fetcher is used by one goroutine at a time.
type Fetcher struct {
	c      *Client
	worker string
	lease  *Lease // nil: no ownership check

	// peek connections, one per queue, for Wait.
	peeks    map[string]*peekConn
	noBLMOVE bool
	// skipped are the queues the last Reserve passed over because their
	// head job had a class it was not to take (ReserveOptions.Classes).
	skipped map[string]bool

	// conn is the connection jobs are reserved and recorded on, kept
	// from one job to the next; pending are the ids of the tracked jobs
	// whose running mark was sent on it and not yet read.
	conn    redis.Conn
	pending []pendingMark

	// waitedOut: the last Wait ran its course with every queue empty.
	waitedOut bool
	// predicted is the id of the job the last reserve said would be
	// taken next, for the next reserve to mark running in its script.
	predicted string
	// queueKeys are each queue's key and pause key (appendQueueKeys).
	queueKeys map[string][2]interface{}

	// full are the limits (ReserveOptions.Limits) the Fetcher found
	// full, and until when it passes over their jobs; heldBack is set
	// when the last reserve passed over jobs for them, so that Wait
	// looks again soon. done is a job whose outcome was recorded: the
	// next acquire frees its slots, and marks them freed on it.
	full     limitBelief
	heldBack bool
	done     *Reserved
}

// WaitedOut reports whether the last Wait returned because its timeout
// passed with nothing in any of its queues (not because a job arrived,
// ctx ended, or it failed or only slept): a Reserve right after would
// find nothing.
func (f *Fetcher) WaitedOut() bool { return f.waitedOut }

type peekConn struct {
	conn redis.Conn
	id   int64
}

// Fetcher returns a new Fetcher for worker id, which checks no lease.
// Close it when done.
func (c *Client) Fetcher(worker string) *Fetcher {
	return &Fetcher{c: c, worker: worker, peeks: map[string]*peekConn{}}
}

// Fetcher returns a Fetcher for the lease's worker id that takes jobs
// only while this process holds the lease.
func (l *Lease) Fetcher() *Fetcher {
	f := l.c.Fetcher(l.ID)
	f.lease = l
	return f
}

// Close releases the Fetcher's connections.
func (f *Fetcher) Close() error {
	var errs []error
	if f.conn != nil {
		errs = append(errs, f.ConfirmRunning(), f.conn.Close())
		f.conn = nil
	}
	for q, p := range f.peeks {
		errs = append(errs, p.conn.Close())
		delete(f.peeks, q)
	}
	return errors.Join(errs...)
}

// Reserved is a job taken by Reserve: the one value that travels from
// the reserve script, through Decode, Restore and the handler's run, to
// the script that records the job's outcome (FinishJob, RetryJob,
// Release). Nothing on the way re-parses or rebuilds it.
type Reserved struct {
	// Job is the job itself. Reserve fills Queue, Payload (as read, no
	// copy) and ID: the payload's "id" when it is a string, the
	// php-resque status token the reserve script marked running (when
	// the key exists). ID is set even when the rest of the payload is
	// not a valid job, so that a rejected tracked job still gets its
	// final status. Decode fills the rest in place; Restore may give it
	// the token and attempt a Ruby scheduler dropped.
	Job
	// Worker is the id of the worker whose worker:<id> holds the job.
	Worker string
	// Slots are the concurrency slots the job holds (ReserveOptions.Limits):
	// its class's (or key's), its queue's, both or none. The worker frees
	// them together once the outcome is recorded (Client.ReleaseSlots),
	// unless SlotsFreed: the step that recorded it and took the next job
	// freed them already.
	Slots []*Slot
	// slotsFreed is set by the acquire that freed Slots (SlotsFreed).
	slotsFreed bool
	// Record is the SHA-1 (hex) of the worker:<id> value that holds the
	// job; FinishJob and Release only act while that value is still
	// there. A digest, so a large payload crosses the network once.
	Record string
	// Resumed is set when the job was already in worker:<id>: an earlier
	// Reserve succeeded but its reply was lost (a connection dropped).
	Resumed bool
	// DelayedStatus is set when tracked delayed jobs may be about
	// (DelayedStatusAnyKey exists): only then can a job without an id be
	// one whose token a Ruby scheduler dropped (Client.Restore).
	DelayedStatus bool

	lease *Lease // the lease the job was taken under, or nil
}

// Decode parses the reserved payload into r.Job, in place. On error r
// still carries Queue, Payload and ID, so the failure is recorded
// without losing the entry.
func (r *Reserved) Decode() error {
	token := r.ID
	_, err := r.Job.decode()
	if token != "" {
		// The token as the reserve script read it names the status key
		// it marked running: the outcome goes to the same key.
		r.ID = token
	}
	return err
}

// payloadDigest is the SHA-1 (hex) of a payload: the job's identity for
// its redelivery count (RedeliveriesKey).
func payloadDigest(payload []byte) string { return sha1Hex(payload) }

// sha1Hex is the SHA-1 of b in hex, as Lua's redis.sha1hex writes it:
// how scripts and Go compare a record they both read.
func sha1Hex(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

// ReserveOptions tune Reserve.
type ReserveOptions struct {
	// Now is the job's run_at; zero means time.Now().
	Now time.Time
	// Classes, when not nil, restricts Reserve to jobs whose class is in
	// it: a queue whose head job has another class is passed over, its
	// job left for the workers that own it.
	Classes []string
	// HeldOnly makes Reserve return only a job already held in
	// worker:<id> (taken by an earlier Reserve whose reply was lost),
	// taking nothing new: ErrNoJob when there is none.
	HeldOnly bool
	// DeferRunning sends a tracked job's running mark without waiting
	// for its reply, which Fetcher.ConfirmRunning then reads: the caller
	// overlaps the round trip with its own work and confirms before it
	// starts the job. Without it the mark is made before Reserve returns.
	DeferRunning bool
	// Limits are the concurrency and rate limits to honour; nil means
	// none, at no cost. A job over its limit stays where it is in its
	// queue and the reserve takes the next one allowed, in priority
	// order.
	Limits *Limits
}

// ErrPausedAll is returned by Reserve while the pause-all-workers flag is
// "true" (Ruby Resque 2.x); nothing is taken.
var ErrPausedAll = errors.New("all workers paused")

// reserveLua defines resqued_reserve, the reserve step that both
// reserveScript and finishReserveScript run: take the head of the first
// queue (KEYS[qfirst..], in order, each followed by its pause key: see
// queuePauseLua) that has one and is not paused into worker:<id> (kw),
// or resume the job already held there. kpause is the pause-all-workers
// flag, kany DelayedStatusAnyKey; runat is the job's run_at, prefix the
// queue key prefix, filter "1" to take only the classes ARGV[cfirst..],
// held "1" to resume a held job only.
//
// predicted is the id the last reserve said would be taken next, kpred
// its status key: when the job taken has that id, its running mark is
// made here (at time now), a round trip less; the key is declared, as
// every key a script touches must be. What it takes, it also looks past:
// the id of the job the next reserve will take, as things stand.
//
// limits is the limits argument (Fetcher.limitsArg; "" for none, which
// costs nothing): a job of a limited class or queue is not taken but
// handed back as a candidate for acquireScript, and jobs whose limit is
// believed full (every job of a limited queue believed full) are passed
// over (resqued_limit_pick).
//
// It returns {queue key, payload, resumed, sha1 of the record, status
// id, 1 if DelayedStatusAnyKey exists, 1 if marked running, the next
// job's id}, or {"skipped", queue keys whose head job has another
// class, that are paused and hold jobs, or a full limit...}, or
// {"limited", ...} (a candidate), or {"paused"}, or false. MarkLua (and
// CodeLua), queuePauseLua and limitsLua go before it.
const reserveLua = `
local function resqued_next_id(qfirst, filter)
  if filter == '1' then return '' end
  for i = qfirst, #KEYS, 2 do
    local head = not resqued_queue_paused(i) and redis.call('LINDEX', KEYS[i], 0)
    if head then
      -- A job without an id (Ruby Resque's) needs no decoding.
      if not string.find(head, '"id"', 1, true) then return '' end
      local ok, p = pcall(cjson.decode, head)
      if ok and type(p) == 'table' and type(p['id']) == 'string' then return p['id'] end
      return ''
    end
  end
  return ''
end
local function resqued_reserve(kw, kpause, kany, kpred, qfirst, runat, prefix, filter, held, predicted, now, cfirst, limits)
  local cur = redis.call('GET', kw)
  if cur then
    local ok, rec = pcall(cjson.decode, cur)
    if not (ok and type(rec) == 'table' and rec['paused']) then
      return {'', cur, 1, redis.sha1hex(cur), '', redis.call('EXISTS', kany), 0, ''}
    end
  end
  if held == '1' then return false end
  local flag = redis.call('GET', kpause)
  if flag and string.lower(flag) == 'true' then return {'paused'} end
  local known = nil
  local skipped = {'skipped'}
  local lim = resqued_limits(limits)
  if filter == '1' then
    known = {}
    for i = cfirst, #ARGV do known[ARGV[i]] = true end
  end
  for i = qfirst, #KEYS, 2 do
    local k = KEYS[i]
    local take = true
    if resqued_queue_paused(i, skipped) then
      take = false
    elseif known then
      local head = redis.call('LINDEX', k, 0)
      take = false
      if head then
        local ok, p = pcall(cjson.decode, head)
        take = ok and type(p) == 'table' and type(p['class']) == 'string' and known[p['class']] == true
        if not take then table.insert(skipped, k) end
      end
    end
    if take then
      local v, cand, blocked, decoded
      if lim then v, cand, blocked, decoded = resqued_limit_pick(k, string.sub(k, string.len(prefix) + 1), lim) else v = redis.call('LPOP', k) end
      if cand then return cand end
      if blocked then table.insert(skipped, k) end
      if v then
        -- Decoded once: by the limits' look at it, if they took one.
        local ok, p = decoded ~= nil, decoded
        if not ok then ok, p = pcall(cjson.decode, v) end
        if not lim and ok and type(p) == 'table' and type(p['class']) == 'string' and p['concurrency'] and resqued_payload_limit(p) > 0 then
          -- A job that sets its own concurrency limit: a candidate.
          redis.call('LPUSH', k, v)
          return {'limited', k, 0, v, p['class'], '', p['concurrency'], p['class'], ''}
        end
        local rec, sid = resqued_hold(kw, k, v, ok, p, prefix, runat)
        local any = 0
        if sid == '' then any = redis.call('EXISTS', kany) end
        -- A tracked job's status turns running here when its id was
        -- foreseen (its key declared), else in runningScript.
        local marked = 0
        if sid ~= '' and sid == predicted then
          resqued_mark(kpred, 2, now)
          marked = 1
        end
        return {k, v, 0, redis.sha1hex(rec), sid, any, marked, resqued_next_id(qfirst, filter)}
      end
    end
  end
  if #skipped > 1 then return skipped end
  return false
end
`

// reserveScript: KEYS[1] is worker:<id>, KEYS[2] the pause-all-workers
// flag, KEYS[3] the worker's owner lease, KEYS[4] DelayedStatusAnyKey,
// KEYS[5] the status key of the foreseen job, KEYS[6..] the queues in
// order, each followed by its pause key (appendQueueKeys). ARGV[1] run_at, ARGV[2] the queue key prefix, ARGV[3] "1" to
// filter by class, ARGV[4] and ARGV[5] the lease token and TTL, ARGV[6]
// "1" for held jobs only, ARGV[7] the foreseen job's id, ARGV[8] the time,
// ARGV[9] the limits, ARGV[10..] the classes. Returns what
// resqued_reserve does, or {"notowner"}.
var reserveScript = redis.NewScript(-1, status.CodeLua+status.MarkLua+ownerLua+queuePauseLua+holdLua+limitsLua+reserveLua+`
if not resqued_owner(KEYS[3], ARGV[4], ARGV[5]) then return {'notowner'} end
return resqued_reserve(KEYS[1], KEYS[2], KEYS[4], KEYS[5], 6, ARGV[1], ARGV[2], ARGV[3], ARGV[6], ARGV[7], ARGV[8], 10, ARGV[9])
`)

// Reserve takes the next job from queues, checked strictly in the order
// given, into worker:<id>, passing over the paused ones (PauseQueue). It returns ErrNoJob when no queue had one, and
// ErrPausedAll while operators paused every worker; it never blocks (see
// Wait). A job already in worker:<id> is resumed even when paused: it
// was taken before the pause. With a lease (Lease.Fetcher) it returns
// ErrNotOwner, taking nothing, once another process holds the id.
//
// A tracked job's running status is set right after, on the same
// connection (see ReserveOptions.DeferRunning).
func (f *Fetcher) Reserve(ctx context.Context, queues []string, opt ReserveOptions) (*Reserved, error) {
	// A candidate not taken (its limit full, or taken by another
	// worker first) is passed over by the next try, which takes the
	// next job allowed; a few tries, then the caller waits.
	for try := 0; ; try++ {
		r, err := f.reserve(ctx, queues, opt)
		if !errors.Is(err, errLimited) {
			return r, err
		}
		if try >= 4 {
			f.heldBack = true
			return nil, ErrNoJob
		}
	}
}

// reserve is one try of Reserve.
func (f *Fetcher) reserve(ctx context.Context, queues []string, opt ReserveOptions) (*Reserved, error) {
	f.skipped, f.heldBack = nil, false
	if len(queues) == 0 && !opt.HeldOnly {
		return nil, ErrNoJob
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	held := "0"
	if opt.HeldOnly {
		held = "1"
	}
	token, ttl := f.lease.ownerArgs()
	args := make([]interface{}, 0, 6+2*len(queues)+9+len(opt.Classes))
	args = append(args, 5+2*len(queues), WorkerKey(f.c.ns, f.worker), PauseAllKey(f.c.ns), OwnerKey(f.c.ns, f.worker),
		DelayedStatusAnyKey(f.c.ns), status.Key(f.c.ns, f.predicted))
	args = f.appendQueueKeys(args, queues)
	args = append(args, now.UTC().Format(RunAtFormat), QueuePrefix(f.c.ns), classFilter(opt), token, ttl, held, f.predicted, now.Unix(), f.limitsArg(opt.Limits, now))
	for _, c := range opt.Classes {
		args = append(args, c)
	}
	conn, err := f.jobConn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", reserveWhat(queues), err)
	}
	sent := time.Now()
	reply, err := reserveScript.Do(conn, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", reserveWhat(queues), err)
	}
	f.lease.renewedAt(sent, reply)
	return f.taken(conn, queues, reply, now, opt)
}

// reserveWhat names a reserve from queues in its errors; only errors
// build it.
func reserveWhat(queues []string) string { return "reserve from " + strings.Join(queues, ",") }

// classFilter is the reserve step's filter argument for opt.
func classFilter(opt ReserveOptions) string {
	if opt.Classes != nil {
		return "1"
	}
	return "0"
}

// taken turns a reply of resqued_reserve (or {"notowner"}) into the job
// it took, or ErrNoJob, ErrPausedAll, ErrNotOwner; for a tracked job it
// sends the running mark. A candidate of a limited class it takes with
// acquireScript, or returns errLimited.
func (f *Fetcher) taken(conn redis.Conn, queues []string, v interface{}, now time.Time, opt ReserveOptions) (*Reserved, error) {
	deferRunning := opt.DeferRunning
	if v == nil {
		return nil, ErrNoJob
	}
	reply, err := redis.Values(v, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", reserveWhat(queues), err)
	}
	if len(reply) > 0 {
		switch tag, _ := reply[0].([]byte); string(tag) {
		case "paused":
			return nil, ErrPausedAll
		case "notowner":
			return nil, fmt.Errorf("reserve for %s: %w", f.worker, ErrNotOwner)
		case "skipped":
			f.skipped = map[string]bool{}
			for _, k := range reply[1:] {
				key, _ := k.([]byte)
				f.skipped[strings.TrimPrefix(string(key), QueuePrefix(f.c.ns))] = true
			}
			f.heldBack = len(f.full) > 0
			return nil, ErrNoJob
		case "limited":
			return f.acquire(conn, queues, reply, opt, now)
		}
	}
	if len(reply) != 8 {
		return nil, fmt.Errorf("%s: unexpected reply", reserveWhat(queues))
	}
	// Take the payload as redigo read it: no copy.
	key, _ := reply[0].([]byte)
	payload, _ := reply[1].([]byte)
	resumed, _ := reply[2].(int64)
	digest, _ := reply[3].([]byte)
	sid, _ := reply[4].([]byte)
	any, _ := reply[5].(int64)
	marked, _ := reply[6].(int64)
	nextID, _ := reply[7].([]byte)
	f.predicted = string(nextID)
	if payload == nil || digest == nil {
		return nil, fmt.Errorf("%s: unexpected reply", reserveWhat(queues))
	}
	r := &Reserved{Job: Job{Queue: strings.TrimPrefix(string(key), QueuePrefix(f.c.ns)), Payload: payload, ID: string(sid)},
		Worker: f.worker, Record: string(digest), DelayedStatus: any == 1, lease: f.lease}
	if resumed == 1 {
		w, err := ParseWorking(payload)
		if err != nil {
			return nil, fmt.Errorf("resume job of %s: %w", f.worker, err)
		}
		r.Queue, r.Payload, r.Resumed, r.ID = w.Queue, w.Payload, true, StatusID(w.Payload)
		f.resumedSlot(conn, r, opt)
	}
	if r.ID != "" && marked != 1 {
		if err := f.markRunning(conn, r, now, deferRunning); err != nil {
			// Only a dropped connection gets here, with the job held:
			// the next Reserve resumes it and marks it.
			return nil, fmt.Errorf("mark job %s running: %w", r.ID, err)
		}
	}
	f.c.reportReplicated(conn, "reserve job", r.ID)
	return r, nil
}

// markRunning sets the running mark of tracked job r on conn. Deferred,
// it does not wait for the reply, which ConfirmRunning (or the Fetcher's
// next command) reads; with WithMinReplicas it always waits, so that
// WAIT covers the mark too.
func (f *Fetcher) markRunning(conn redis.Conn, r *Reserved, now time.Time, deferred bool) error {
	args := []interface{}{WorkerKey(f.c.ns, f.worker), status.Key(f.c.ns, r.ID), r.Record, now.Unix()}
	if f.c.minReplicas > 0 || !deferred {
		_, err := runningScript.Do(conn, args...)
		return err
	}
	// EVALSHA; a NOSCRIPT reply (a server that never ran it: a restart,
	// a new primary) is answered with EVAL in ConfirmRunning. The mark
	// checks worker:<id>, so it may land late without harm.
	if err := runningScript.SendHash(conn, args...); err != nil {
		return err
	}
	if err := conn.Flush(); err != nil {
		return err
	}
	f.pending = append(f.pending, pendingMark{id: r.ID, args: args})
	return nil
}

// pendingMark is a running mark sent and not yet read.
type pendingMark struct {
	id   string
	args []interface{}
}

// ConfirmRunning reads the replies of running marks sent and not read
// yet (ReserveOptions.DeferRunning). An error says the status of that
// job may still read waiting until its outcome is recorded (a dropped
// connection); the job itself is held and may run all the same.
func (f *Fetcher) ConfirmRunning() error {
	if len(f.pending) == 0 {
		return nil
	}
	var errs []error
	pending := f.pending
	f.pending = f.pending[:0]
	for _, m := range pending {
		_, err := f.conn.Receive()
		if isNoScript(err) {
			_, err = runningScript.Do(f.conn, m.args...)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("mark job %s running: %w", m.id, err))
		}
	}
	return errors.Join(errs...)
}

// jobConn returns the Fetcher's connection for reserving and recording
// jobs, dialling a new one when it has none or the one it has broke.
// Replies still unread on it (running marks) are read first.
func (f *Fetcher) jobConn(ctx context.Context) (redis.Conn, error) {
	if f.conn != nil {
		_ = f.ConfirmRunning() // the caller already heard of it, or never will
		if f.conn.Err() == nil {
			return f.conn, nil
		}
		f.conn.Close()
		f.conn = nil
	}
	conn, err := f.c.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	f.conn = conn
	return conn, nil
}

// runningScript turns the status KEYS[2] of a tracked job just reserved
// running (php-resque's status; only an existing key is touched), only
// while worker:<id> (KEYS[1]) still holds the job's record (SHA-1
// ARGV[1]): a job pruned or finished meanwhile keeps the status its
// outcome gave it. ARGV[2] is the time. Returns 1 when it marked.
var runningScript = redis.NewScript(2, status.CodeLua+status.MarkLua+`
local cur = redis.call('GET', KEYS[1])
if not cur or redis.sha1hex(cur) ~= ARGV[1] then return 0 end
return resqued_mark(KEYS[2], 2, ARGV[2])
`)

// StatusID is payload's "id" when it is a non-empty string, as the
// reserve script reads it: the job's php-resque status token.
func StatusID(payload []byte) string {
	var p struct {
		ID interface{} `json:"id"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return ""
	}
	s, _ := p.ID.(string)
	return s
}

// ParseWorking decodes a worker:<id> value. Payload keeps the bytes of the
// original entry when it was a JSON object.
func ParseWorking(record []byte) (*Working, error) {
	var w Working
	if err := json.Unmarshal(record, &w); err != nil {
		return nil, fmt.Errorf("parse worker record: %w", err)
	}
	return &w, nil
}

// Wait blocks until one of queues has a job, timeout passes or ctx is
// cancelled, without taking anything: on one connection per queue it
// issues BLMOVE q q RIGHT RIGHT, which returns as soon as q is non-empty
// and moves its last element onto itself, changing nothing. Idle, a worker
// costs Redis one command per queue per timeout. Cancelling ctx unblocks
// the waits with CLIENT UNBLOCK. On Redis before 6.2 (no BLMOVE) it
// sleeps min(timeout, 1s) instead.
func (f *Fetcher) Wait(ctx context.Context, queues []string, timeout time.Duration) error {
	f.waitedOut = false
	if timeout <= 0 || len(queues) == 0 || ctx.Err() != nil {
		return nil
	}
	// A queue held up by another class's job is non-empty, so a peek
	// would return at once: watch only the others, and look again within
	// a second for the head job to be taken by its owner.
	if len(f.skipped) > 0 {
		var rest []string
		for _, q := range queues {
			if !f.skipped[q] {
				rest = append(rest, q)
			}
		}
		queues, timeout = rest, min(timeout, time.Second)
	}
	// Jobs held back by a full limit: look again as soon as a slot
	// may have freed (fullFor) or a rate limit's next start is due.
	if f.heldBack {
		timeout = min(timeout, f.limitWait())
	}
	if f.noBLMOVE || len(queues) == 0 {
		snooze.For(ctx, min(timeout, time.Second))
		return nil
	}
	// Drop connections of queues no longer listened to.
	want := map[string]bool{}
	for _, q := range queues {
		want[q] = true
	}
	for q, p := range f.peeks {
		if !want[q] {
			p.conn.Close()
			delete(f.peeks, q)
		}
	}
	for _, q := range queues {
		if p := f.peeks[q]; p == nil || p.conn.Err() != nil {
			if p != nil {
				p.conn.Close()
			}
			conn, err := f.c.pool.GetContext(ctx)
			if err != nil {
				return fmt.Errorf("wait for jobs: %w", err)
			}
			id, err := redis.Int64(conn.Do("CLIENT", "ID"))
			if err != nil {
				conn.Close()
				return fmt.Errorf("wait for jobs: %w", err)
			}
			f.peeks[q] = &peekConn{conn: conn, id: id}
		}
	}
	wctx, wake := context.WithCancel(ctx)
	defer wake()
	// returned[i] is set once queue i's BLMOVE has come back: only the
	// peeks still blocked need a CLIENT UNBLOCK (none, with one queue,
	// so a pickup costs no extra round trip).
	returned := make([]atomic.Bool, len(queues))
	ids := make([]int64, len(queues))
	for i, q := range queues {
		ids[i] = f.peeks[q].id
	}
	stop := f.c.unblockOnCancel(wctx, ids, returned)
	defer stop()
	var wg sync.WaitGroup
	var arrived atomic.Bool
	failed := make([]error, len(queues))
	tails := make([]string, len(queues))
	secs := fmt.Sprintf("%.3f", timeout.Seconds())
	for i, q := range queues {
		p, key := f.peeks[q], QueueKey(f.c.ns, q)
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := redis.DoWithTimeout(p.conn, timeout+10*time.Second, "BLMOVE", key, key, "RIGHT", "RIGHT", secs)
			returned[i].Store(true)
			failed[i] = err
			if v != nil {
				arrived.Store(true)
				// BLMOVE q q RIGHT RIGHT hands back q's last job: the
				// head too when it is alone, as a job pushed onto an
				// empty queue is. The reserve can then mark it running
				// in its own script (resqued_reserve's predicted).
				if b, ok := v.([]byte); ok {
					tails[i] = StatusID(b)
				}
			}
			if v != nil || err != nil {
				wake() // a job is there (or trouble): stop waiting on the rest
			}
		}()
	}
	wg.Wait()
	f.waitedOut = !arrived.Load() && ctx.Err() == nil && len(f.skipped) == 0 && !f.heldBack && errors.Join(failed...) == nil
	for _, id := range tails {
		if id != "" {
			f.predicted = id // the first queue's, as the reserve takes it
			break
		}
	}
	var first error
	for i, err := range failed {
		if err == nil {
			continue
		}
		if isUnknownCommand(err) {
			f.noBLMOVE = true
			return nil
		}
		// UNBLOCKED (the server became a replica), READONLY, a broken
		// connection: this connection is done with. The next Wait dials
		// a new one, through the pool, to the primary as it is then.
		f.peeks[queues[i]].conn.Close()
		delete(f.peeks, queues[i])
		if first == nil {
			first = err
		}
	}
	if first != nil {
		return fmt.Errorf("wait for jobs: %w", first)
	}
	return nil
}

// unblockOnCancel unblocks, once ctx is done, the connections ids (their
// CLIENT IDs) whose blocking command has not returned yet (returned[i]
// unset), until the returned function is called. It repeats the unblock
// because the cancel may land before a blocking command reached Redis.
// Fetcher.Wait's BLMOVEs and Waker.Wait's BLPOP both stop with it.
func (c *Client) unblockOnCancel(ctx context.Context, ids []int64, returned []atomic.Bool) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var blocked []int64
			for i, id := range ids {
				if !returned[i].Load() {
					blocked = append(blocked, id)
				}
			}
			if len(blocked) == 0 {
				return
			}
			conn := c.pool.Get()
			for _, id := range blocked {
				_ = conn.Send("CLIENT", "UNBLOCK", id)
			}
			_, _ = conn.Do("")
			conn.Close()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

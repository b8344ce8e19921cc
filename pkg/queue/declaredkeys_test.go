package queue_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// Redis Cluster, Valkey and DragonflyDB require a script to declare in
// KEYS every key it touches. Redis 7 itself enforces it only across
// slots and nodes: with a hash-tagged namespace every key shares one
// slot, so a real cluster does not catch a script that builds a key from
// its arguments (checked by hand: an undeclared same-slot key is
// accepted). Dragonfly is not available here. So this test checks it
// directly: keyCheckConn runs every script with a prelude that replaces
// redis.call and redis.pcall with versions that refuse any key argument
// not in KEYS, and the core flows run through it.

// keyCheckLua is put before each script. It wraps the script's body in
// a function, so that a violation caught by the script's own pcall
// still fails the call when the body returns.
const keyCheckLua = `
local resqued_redis = redis
local resqued_declared, resqued_bad = {}, nil
for _, k in ipairs(KEYS) do resqued_declared[k] = true end
-- Where each command our scripts use takes its keys: 1 the first
-- argument, 'all' every argument.
local resqued_keyargs = {
  GET=1, SET=1, DEL='all', EXISTS='all', INCR=1, INCRBY=1, EXPIRE=1, PEXPIRE=1, TTL=1, PTTL=1,
  LPOP=1, RPOP=1, RPUSH=1, LPUSH=1, LINDEX=1, LSET=1, LREM=1, LLEN=1, LPOS=1, LRANGE=1,
  SADD=1, SREM=1, SISMEMBER=1, SMEMBERS=1, ZADD=1, ZREM=1, ZRANGE=1, ZRANGEBYSCORE=1, ZREMRANGEBYSCORE=1, ZCARD=1,
  TIME=0,
  HSET=1, HGET=1, HDEL=1, HGETALL=1, HINCRBY=1,
}
local function resqued_check(cmd, ...)
  local args = {...}
  local how = resqued_keyargs[string.upper(cmd)]
  if how == nil then
    resqued_bad = resqued_bad or ('key check: add ' .. cmd .. ' to resqued_keyargs')
    return
  end
  local n = how
  if how == 'all' then n = #args end
  for i = 1, n do
    if not resqued_declared[args[i]] then
      resqued_bad = resqued_bad or ('undeclared key ' .. tostring(args[i]) .. ' in ' .. string.upper(cmd))
    end
  end
end
local redis = setmetatable({
  call = function(cmd, ...) resqued_check(cmd, ...); return resqued_redis.call(cmd, ...) end,
  pcall = function(cmd, ...) resqued_check(cmd, ...); return resqued_redis.pcall(cmd, ...) end,
}, {__index = resqued_redis})
local resqued_reply = (function()
`

const keyCheckEnd = `
end)()
if resqued_bad then return resqued_redis.error_reply('KEYCHECK ' .. resqued_bad) end
return resqued_reply
`

// keyCheckConn runs scripts instrumented with keyCheckLua. It learns
// each script's source from EVAL or SCRIPT LOAD and turns EVALSHA of a
// known script into an EVAL of its instrumented source; EVALSHA of an
// unknown one reaches Redis, which has only instrumented scripts, so it
// answers NOSCRIPT and redigo sends the source.
type keyCheckConn struct {
	redis.Conn
	mu      *sync.Mutex
	sources map[string]string // SHA-1 of the original source -> source
	scripts map[string]bool   // SHA-1s seen run
}

func (c keyCheckConn) rewrite(cmd string, args []interface{}) (string, []interface{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch strings.ToUpper(cmd) {
	case "EVAL":
		src := fmt.Sprint(args[0])
		sum := sha1.Sum([]byte(src))
		c.sources[hex.EncodeToString(sum[:])] = src
		c.scripts[hex.EncodeToString(sum[:])] = true
		return cmd, append([]interface{}{keyCheckLua + src + keyCheckEnd}, args[1:]...)
	case "EVALSHA":
		sha := fmt.Sprint(args[0])
		if src, ok := c.sources[sha]; ok {
			c.scripts[sha] = true
			return "EVAL", append([]interface{}{keyCheckLua + src + keyCheckEnd}, args[1:]...)
		}
	case "SCRIPT":
		if len(args) == 2 && strings.EqualFold(fmt.Sprint(args[0]), "LOAD") {
			src := fmt.Sprint(args[1])
			sum := sha1.Sum([]byte(src))
			c.sources[hex.EncodeToString(sum[:])] = src
			// Load the instrumented source; hand back the original's
			// SHA-1, as redigo expects.
			return "SCRIPT", []interface{}{"LOAD", keyCheckLua + src + keyCheckEnd}
		}
	}
	return cmd, args
}

func (c keyCheckConn) Do(cmd string, args ...interface{}) (interface{}, error) {
	orig := cmd
	cmd, args = c.rewrite(cmd, args)
	v, err := c.Conn.Do(cmd, args...)
	if strings.EqualFold(orig, "SCRIPT") && err == nil {
		return c.originalSHA(args), nil
	}
	return v, err
}

func (c keyCheckConn) Send(cmd string, args ...interface{}) error {
	cmd, args = c.rewrite(cmd, args)
	return c.Conn.Send(cmd, args...)
}

func (c keyCheckConn) originalSHA(args []interface{}) string {
	src := strings.TrimSuffix(strings.TrimPrefix(fmt.Sprint(args[1]), keyCheckLua), keyCheckEnd)
	sum := sha1.Sum([]byte(src))
	return hex.EncodeToString(sum[:])
}

// keyCheckPool is a pool to srv whose connections check declared keys,
// and the set of scripts that ran through it.
func keyCheckPool(t *testing.T, srv *redistest.Server) (*redis.Pool, func() int) {
	var mu sync.Mutex
	sources, scripts := map[string]string{}, map[string]bool{}
	p := &redis.Pool{
		MaxIdle: 4,
		Dial: func() (redis.Conn, error) {
			c, err := redis.Dial("tcp", srv.Addr)
			if err != nil {
				return nil, err
			}
			return keyCheckConn{Conn: c, mu: &mu, sources: sources, scripts: scripts}, nil
		},
	}
	t.Cleanup(func() { p.Close() })
	return p, func() int { mu.Lock(); defer mu.Unlock(); return len(scripts) }
}

// The checker itself: a script that builds a key from its arguments
// fails, even when it swallows the error with pcall; one that declares
// its keys runs.
func TestKeyCheck_CatchesUndeclaredKeys(t *testing.T) {
	srv := redistest.Start(t)
	p, _ := keyCheckPool(t, srv)
	c := p.Get()
	defer c.Close()
	bad := redis.NewScript(1, `redis.call('SET', KEYS[1], 1) return redis.call('INCR', ARGV[1] .. 'x')`)
	if _, err := bad.Do(c, "{t}:a", "{t}:"); err == nil || !strings.Contains(err.Error(), "undeclared key {t}:x") {
		t.Errorf("undeclared key: err = %v", err)
	}
	hidden := redis.NewScript(1, `pcall(redis.call, 'GET', ARGV[1]) return 1`)
	if _, err := hidden.Do(c, "{t}:a", "{t}:b"); err == nil || !strings.Contains(err.Error(), "undeclared key") {
		t.Errorf("undeclared key under pcall: err = %v", err)
	}
	good := redis.NewScript(2, `redis.call('DEL', KEYS[1], KEYS[2]) return redis.call('INCR', KEYS[1])`)
	if n, err := redis.Int(good.Do(c, "{t}:a", "{t}:b")); err != nil || n != 1 {
		t.Errorf("declared keys: %v, %v", n, err)
	}
}

// Every script of pkg/queue and pkg/status, through the flows that run
// them, touches only the keys it declares.
func TestScripts_DeclareEveryKey(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool, ran := keyCheckPool(t, srv)
	const ns = "{resque}"
	c := queue.New(pool, ns)
	st := status.New(pool, ns)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	reserve := func(f *queue.Fetcher) *queue.Reserved {
		t.Helper()
		r, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
		must("reserve", err)
		must("decode", r.Decode())
		return r
	}
	lease := c.NewLease("h:1:q", "", time.Minute)
	_, err := lease.Acquire(ctx)
	must("acquire lease", err)
	must("renew lease", lease.Renew(ctx))
	must("register", c.RegisterWorker(ctx, "h:1:q", time.Now()))
	f := lease.Fetcher()
	defer f.Close()

	// Enqueue tracked, reserve (status turns running), finish.
	must("enqueue", c.Enqueue(ctx, "q", []byte(`{"class":"A","args":[1],"id":"t1"}`), queue.EnqueueOptions{Track: true, ID: "t1"}))
	r := reserve(f)
	if s, err := st.Get(ctx, "t1"); err != nil || s.Code != status.Running {
		t.Errorf("status after reserve = %+v, %v; want running", s, err)
	}
	ok, err := c.FinishJob(ctx, r, queue.Outcome{})
	must("finish", err)
	if !ok {
		t.Error("finish did not record")
	}
	// Class filter, fail, release.
	must("enqueue", c.Enqueue(ctx, "q", []byte(`{"class":"B","args":[],"id":"t2"}`), queue.EnqueueOptions{Track: true, ID: "t2"}))
	if _, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{Classes: []string{"A"}}); !errors.Is(err, queue.ErrNoJob) {
		t.Errorf("reserve with another class = %v, want ErrNoJob", err)
	}
	r = reserve(f)
	must("release", c.Release(ctx, r))
	r = reserve(f)
	_, err = c.FinishJob(ctx, r, queue.Outcome{Exception: "E", Error: "boom"})
	must("fail", err)
	must("remove failure", c.RemoveFailed(ctx, 0))
	// Retry: into the delayed set, moved back when due.
	must("enqueue", c.Enqueue(ctx, "q", []byte(`{"class":"C","args":[2],"id":"t3"}`), queue.EnqueueOptions{Track: true, ID: "t3"}))
	r = reserve(f)
	_, err = c.RetryJob(ctx, r, time.Now().Add(-time.Second))
	must("retry", err)
	// Delay tracked, and one whose item names no usable queue.
	must("delay", c.Delay(ctx, time.Now().Add(-2*time.Second), "q", []byte(`{"class":"D","args":[3],"id":"t4"}`), queue.EnqueueOptions{Track: true, ID: "t4"}))
	tss, err := c.DueTimestamps(ctx, time.Now(), 0, 10)
	must("due", err)
	for _, ts := range tss {
		_, err := c.MoveDelayed(ctx, ts, 10)
		must("move delayed", err)
	}
	for i := 0; i < 2; i++ {
		r = reserve(f)
		_, err = c.FinishJob(ctx, r, queue.Outcome{})
		must("finish", err)
	}
	// A tracked delayed job a Ruby scheduler moved without its id:
	// Restore claims its token.
	at := time.Now().Add(-time.Second)
	must("delay", c.Delay(ctx, at, "q", []byte(`{"class":"R","args":[4],"id":"t5"}`), queue.EnqueueOptions{Track: true, ID: "t5"}))
	ts := at.Unix() + 1
	srv.Do(t, "DEL", queue.DelayedKey(ns, ts))
	srv.Do(t, "ZREM", queue.DelayedScheduleKey(ns), ts)
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "q"), `{"class":"R","args":[4]}`)
	r = reserve(f)
	must("restore", c.Restore(ctx, r, queue.RestoreOptions{Attempt: true}))
	if r.ID != "t5" {
		t.Errorf("restored token = %q, want t5", r.ID)
	}
	_, err = c.FinishJob(ctx, r, queue.Outcome{})
	must("finish", err)
	// Cancel: a running job's request, a queued and a delayed job's removal.
	must("enqueue", c.Enqueue(ctx, "q", []byte(`{"class":"A","args":[7],"id":"c1"}`), queue.EnqueueOptions{Track: true, ID: "c1"}))
	r = reserve(f)
	j, err := c.FindRunning(ctx, "c1")
	must("find running", err)
	_, err = c.RequestCancel(ctx, j, "test", time.Now())
	must("request cancel", err)
	_, err = c.FinishJob(ctx, r, queue.Outcome{Exception: "Resqued::Cancelled"})
	must("finish", err)
	must("enqueue", c.Enqueue(ctx, "q", []byte(`{"class":"A","args":[8],"id":"c2"}`), queue.EnqueueOptions{Track: true, ID: "c2"}))
	_, err = c.RemoveQueued(ctx, "c2", "test", time.Now())
	must("remove queued", err)
	must("delay", c.Delay(ctx, time.Now().Add(time.Hour), "q", []byte(`{"class":"A","args":[9],"id":"c3"}`), queue.EnqueueOptions{Track: true, ID: "c3"}))
	_, err = c.RemoveDelayed(ctx, "c3", "test", time.Now())
	must("remove delayed", err)
	// A paused queue holding a job, passed over by a reserve and a
	// finish-and-reserve; then resumed and taken from.
	_, err = c.PauseQueue(ctx, "p")
	must("pause queue", err)
	must("enqueue", c.Enqueue(ctx, "p", []byte(`{"class":"A","args":[10],"id":"p1"}`), queue.EnqueueOptions{Track: true, ID: "p1"}))
	must("enqueue", c.Enqueue(ctx, "q", []byte(`{"class":"A","args":[11],"id":"p2"}`), queue.EnqueueOptions{Track: true, ID: "p2"}))
	r, err = f.Reserve(ctx, []string{"p", "q"}, queue.ReserveOptions{})
	must("reserve past a paused queue", err)
	must("decode", r.Decode())
	if _, _, err := f.FinishAndReserve(ctx, r, queue.Outcome{}, []string{"p", "q"}, queue.ReserveOptions{}); !errors.Is(err, queue.ErrNoJob) {
		t.Errorf("finish and reserve with only a paused queue holding a job = %v, want ErrNoJob", err)
	}
	_, err = c.ResumeQueue(ctx, "p")
	must("resume queue", err)
	r, err = f.Reserve(ctx, []string{"p", "q"}, queue.ReserveOptions{})
	must("reserve from a resumed queue", err)
	must("decode", r.Decode())
	_, err = c.FinishJob(ctx, r, queue.Outcome{})
	must("finish", err)
	// Pause marker, status updates, prune lock, dead-worker cleanup.
	must("pause", c.SetPaused(ctx, "h:1:q", "q", true, time.Now()))
	must("unpause", c.SetPaused(ctx, "h:1:q", "q", false, time.Now()))
	_, err = st.Update(ctx, "t1", status.Failed, time.Now())
	must("status update", err)
	_, err = st.Annotate(ctx, "t1", status.Detail{})
	must("annotate", err)
	_, _, err = c.TryPruneLock(ctx, "h:1:q", time.Minute)
	must("prune lock", err)
	_, err = c.TakeOverPruneLock(ctx, "h:1:q", "h:2:q", time.Minute)
	must("take over prune lock", err)
	must("release prune lock", c.ReleasePruneLock(ctx, "h:2:q"))
	must("enqueue", c.Enqueue(ctx, "q", []byte(`{"class":"A","args":[5],"id":"t6"}`), queue.EnqueueOptions{Track: true, ID: "t6"}))
	r = reserve(f)
	rec, err := c.InFlight(ctx, "h:1:q")
	must("in flight", err)
	_, err = c.UnregisterDead(ctx, "h:1:q", lease.Token, &queue.Orphan{Record: rec, Queue: "q", Payload: r.Payload, Requeue: true, StatusID: "t6", MaxRedeliveries: 3, Poison: &queue.Outcome{Exception: "P"}})
	must("unregister dead", err)
	// Limits: a concurrency slot, a queue slot and a rate start taken
	// with a job, the full class passed over, the slots renewed with the
	// lease and freed by the next outcome step.
	path, err := queue.ParseArgPath("args[0].k")
	must("parse path", err)
	// lq's own limit makes every job on it hold a queue slot as well.
	lim := queue.NewLimits(map[string]queue.ClassLimit{"L": {Concurrency: 1, ConcurrencyKey: path, Rate: 1, Per: time.Hour}}).WithQueues(map[string]int{"lq": 3})
	lopt := queue.ReserveOptions{Limits: lim}
	for _, p := range []string{`{"class":"L","args":[{"k":1}]}`, `{"class":"L","args":[{"k":1}]}`, `{"class":"A","args":[]}`} {
		must("enqueue", c.Enqueue(ctx, "lq", []byte(p), queue.EnqueueOptions{}))
	}
	r, err = f.Reserve(ctx, []string{"lq"}, lopt)
	must("reserve limited", err)
	must("renew lease with slot", lease.Renew(ctx))
	f2 := c.Fetcher("h:2:q")
	defer f2.Close()
	r2, err := f2.Reserve(ctx, []string{"lq"}, lopt)
	must("reserve past a full limit", err)
	if string(r2.Payload) != `{"class":"A","args":[]}` {
		t.Errorf("reserve past a full limit took %s (first took %s)", r2.Payload, r.Payload)
	}
	_, err = c.FinishJob(ctx, r2, queue.Outcome{})
	must("finish", err)
	_, next, err := f.FinishAndReserve(ctx, r, queue.Outcome{}, []string{"lq"}, lopt)
	if !errors.Is(err, queue.ErrNoJob) {
		t.Errorf("finish and reserve at the rate limit = %v, %+v, want ErrNoJob", err, next)
	}
	if len(r.Slots) != 2 {
		t.Errorf("slots of a limited class on a limited queue = %+v, want two", r.Slots)
	}
	must("release slot", c.ReleaseSlots(ctx, lease, r.Slots))
	// A queue at its limit is passed over whole.
	qlim := queue.NewLimits(nil).WithQueues(map[string]int{"fq": 1})
	for _, p := range []string{`{"class":"A","args":[1]}`, `{"class":"A","args":[2]}`} {
		must("enqueue", c.Enqueue(ctx, "fq", []byte(p), queue.EnqueueOptions{}))
	}
	r3, err := f2.Reserve(ctx, []string{"fq"}, queue.ReserveOptions{Limits: qlim})
	must("reserve from a limited queue", err)
	f3 := c.Fetcher("h:3:q")
	defer f3.Close()
	if _, err := f3.Reserve(ctx, []string{"fq", "lq"}, queue.ReserveOptions{Limits: qlim}); err != nil && !errors.Is(err, queue.ErrNoJob) {
		must("reserve past a full queue", err)
	}
	must("release queue slot", c.ReleaseSlots(ctx, nil, r3.Slots))
	_, err = c.LimitsInUse(ctx, lim, []string{"lq"})
	must("limits in use", err)

	// Kept output, beyond its cap: the trim deletes the oldest.
	for i, id := range []string{"o1", "o2"} {
		must("keep output", c.KeepOutput(ctx, queue.Output{ID: id, At: time.Now().Add(time.Duration(i) * time.Millisecond), Stdout: []string{"x"}}, queue.OutputOptions{TTL: time.Minute, MaxJobs: 1}))
	}

	// Unique jobs: enqueue, delay (refused: the lock is held), claim, release.
	uj := []byte(`{"class":"U","args":[{"b":1,"a":2}],"id":"u1"}`)
	must("enqueue unique", c.Enqueue(ctx, "q", uj, queue.EnqueueOptions{ID: "u1", Unique: time.Minute}))
	if err := c.Delay(ctx, time.Now().Add(time.Minute), "q", uj, queue.EnqueueOptions{ID: "u2", Unique: time.Minute}); !errors.Is(err, queue.ErrDuplicate) {
		t.Errorf("delay of a unique copy: %v, want ErrDuplicate", err)
	}
	must("delay unique", c.Delay(ctx, time.Now().Add(time.Minute), "q", []byte(`{"class":"U","args":[3]}`), queue.EnqueueOptions{ID: "u3", Unique: time.Minute}))
	uj1, err := queue.Decode("q", uj)
	must("decode unique", err)
	must("claim unique", c.ClaimUnique(ctx, uj1, "u1", time.Minute))
	_, err = c.ReleaseUnique(ctx, uj1, "u1")
	must("release unique", err)

	if n := ran(); n < 12 {
		t.Errorf("only %d distinct scripts ran: is a flow missing?", n)
	}
}

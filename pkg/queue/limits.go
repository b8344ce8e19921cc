package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Concurrency and rate limits across the fleet (docs/reliability.md,
// Limits). A job of a limited class is taken in two steps: the reserve
// script, which passes over jobs whose limit this worker believes full
// and otherwise takes the first job in priority order, hands a limited
// job back as a candidate instead of taking it; acquireScript then takes
// that exact entry and its slot (or rate token) in one atomic step, or
// nothing. A slot is a member of a sorted set scored by when it lapses:
// the holder's lease time, extended with the worker's lease, so a worker
// killed with -9 frees its slot within the lease TTL.
//
// A queue may have a concurrency limit of its own (Limits.WithQueues):
// every job of a limited queue is a candidate, and takes a slot of the
// queue's limit (QueueConcurrencyKey) as well as its class's when that
// has one too. acquireScript checks both and takes both, or nothing;
// both are freed together, renewed together with the lease and lapse
// together.

// ArgPath picks one value out of a job's args: args[i] followed by any
// number of .field steps, as in args[0].customer_id. The value (a string,
// a number or a boolean) names the job's own limit, so that the limit is
// per customer rather than per class.
type ArgPath struct {
	// Index is the position in args, from 0.
	Index int
	// Fields are the object fields to step through, in order.
	Fields []string
	text   string
}

// String is the path as written.
func (p *ArgPath) String() string { return p.text }

// ParseArgPath reads an ArgPath: args[i] and then .field steps, where a
// field is letters, digits, _ and -.
func ParseArgPath(s string) (*ArgPath, error) {
	const want = "want a path such as args[0] or args[0].customer_id"
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "args[")
	if !ok {
		return nil, errors.New(want)
	}
	num, rest, ok := strings.Cut(rest, "]")
	i, err := strconv.Atoi(num)
	if !ok || err != nil || i < 0 || i > 1000 {
		return nil, errors.New(want)
	}
	p := &ArgPath{Index: i, text: strings.TrimSpace(s)}
	if rest == "" {
		return p, nil
	}
	if !strings.HasPrefix(rest, ".") {
		return nil, errors.New(want)
	}
	for _, f := range strings.Split(rest[1:], ".") {
		if f == "" || strings.IndexFunc(f, func(r rune) bool {
			return !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) >= 0 {
			return nil, fmt.Errorf("%s (a field is letters, digits, _ and -)", want)
		}
		p.Fields = append(p.Fields, f)
	}
	return p, nil
}

// lua is the path as the reserve script reads it: the 1-based index,
// then the fields, joined by ".".
func (p *ArgPath) lua() string {
	if p == nil {
		return ""
	}
	return strings.Join(append([]string{strconv.Itoa(p.Index + 1)}, p.Fields...), ".")
}

// value is what p picks out of args, as the reserve script formats it
// (Lua's tostring: %.14g for numbers), and whether there was one.
func (p *ArgPath) value(args []interface{}) (string, bool) {
	if p.Index >= len(args) {
		return "", false
	}
	v := args[p.Index]
	for _, f := range p.Fields {
		m, ok := v.(map[string]interface{})
		if !ok {
			return "", false
		}
		if v, ok = m[f]; !ok {
			return "", false
		}
	}
	switch v := v.(type) {
	case string:
		// A tab or newline would break the reserve script's limits
		// argument: such a value names no limit.
		return v, !strings.ContainsAny(v, "\t\n")
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return "", false
		}
		return luaNumber(f), true
	case float64:
		return luaNumber(v), true
	}
	return "", false
}

// luaNumber formats f as Lua 5.1's tostring does ("%.14g").
func luaNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e14 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', 14, 64)
}

// ClassLimit is what limits one class's jobs: at most Concurrency of
// them running at once, at most Rate starts per Per. Zero means no such
// limit. A key path makes the limit one per value it picks out of the
// args instead of one for the class.
type ClassLimit struct {
	Concurrency    int
	ConcurrencyKey *ArgPath
	Rate           int
	Per            time.Duration
	RateKey        *ArgPath
}

// Limits are the limits a worker honours, by class and by queue. A nil
// *Limits is no limits: the reserve path is then exactly what it is
// without them.
type Limits struct {
	classes map[string]ClassLimit
	queues  map[string]int // the most jobs of each limited queue running at once
	spec    string         // the lines of the reserve script's limits argument
}

// NewLimits returns the limits of classes (those with no limit set are
// dropped), or nil when none has one.
func NewLimits(classes map[string]ClassLimit) *Limits {
	l := &Limits{classes: map[string]ClassLimit{}}
	names := make([]string, 0, len(classes))
	for name, cl := range classes {
		if cl.Concurrency <= 0 && (cl.Rate <= 0 || cl.Per <= 0) {
			continue
		}
		l.classes[name] = cl
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil
	}
	l.spec = l.buildSpec()
	return l
}

// WithQueues returns l (which may be nil) with concurrency limits per
// queue added: at most queues[q] jobs taken from queue q running at
// once across the fleet, whatever their class. Queues with no positive
// limit are dropped; it returns nil when neither l nor queues limit
// anything.
func (l *Limits) WithQueues(queues map[string]int) *Limits {
	out := &Limits{classes: map[string]ClassLimit{}, queues: map[string]int{}}
	if l != nil {
		out.classes = l.classes
		for q, n := range l.queues {
			out.queues[q] = n
		}
	}
	for q, n := range queues {
		if n > 0 {
			out.queues[q] = n
		}
	}
	if len(out.classes) == 0 && len(out.queues) == 0 {
		return nil
	}
	out.spec = out.buildSpec()
	return out
}

// buildSpec is the reserve script's limits argument for l's classes and
// queues: one line each, sorted.
func (l *Limits) buildSpec() string {
	var b strings.Builder
	for _, name := range l.Classes() {
		cl := l.classes[name]
		conc, rate := "-", "-"
		if cl.Concurrency > 0 {
			conc = "=" + cl.ConcurrencyKey.lua()
		}
		if cl.Rate > 0 && cl.Per > 0 {
			rate = "=" + cl.RateKey.lua()
		}
		fmt.Fprintf(&b, "L\t%s\t%s\t%s\n", name, conc, rate)
	}
	for _, q := range l.Queues() {
		fmt.Fprintf(&b, "Q\t%s\n", q)
	}
	return b.String()
}

// Queue returns queue q's concurrency limit, if it has one.
func (l *Limits) Queue(q string) (int, bool) {
	if l == nil {
		return 0, false
	}
	n, ok := l.queues[q]
	return n, ok
}

// Queues returns the limited queues, sorted.
func (l *Limits) Queues() []string {
	if l == nil {
		return nil
	}
	out := make([]string, 0, len(l.queues))
	for q := range l.queues {
		out = append(out, q)
	}
	slices.Sort(out)
	return out
}

// Class returns class's limit, if it has one.
func (l *Limits) Class(class string) (ClassLimit, bool) {
	if l == nil {
		return ClassLimit{}, false
	}
	cl, ok := l.classes[class]
	return cl, ok
}

// Classes returns the limited classes, sorted.
func (l *Limits) Classes() []string {
	if l == nil {
		return nil
	}
	out := make([]string, 0, len(l.classes))
	for c := range l.classes {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Names returns the names of the concurrency and the rate limit a job of
// class with args (its JSON array) falls under ("" for none): the class,
// or class:value with a key path, as the reserve script names them.
// missing names a key path that picked nothing out of args: the job then
// runs without that limit.
func (l *Limits) Names(class string, args json.RawMessage) (conc, rate string, missing *ArgPath) {
	cl, ok := l.Class(class)
	if !ok {
		return "", "", nil
	}
	var list []interface{}
	if cl.ConcurrencyKey != nil || cl.RateKey != nil {
		d := json.NewDecoder(bytes.NewReader(args))
		d.UseNumber()
		_ = d.Decode(&list) // not a list: every key is missing
	}
	name := func(p *ArgPath) string {
		if p == nil {
			return class
		}
		v, ok := p.value(list)
		if !ok {
			missing = p
			return ""
		}
		return class + ":" + v
	}
	if cl.Concurrency > 0 {
		conc = name(cl.ConcurrencyKey)
	}
	if cl.Rate > 0 && cl.Per > 0 {
		rate = name(cl.RateKey)
	}
	return conc, rate, missing
}

// Slot is a concurrency slot a reserved job holds: a member of the
// limit's ConcurrencyKey set (QueueConcurrencyKey for a queue's limit),
// scored by when it lapses unless renewed with the worker's lease.
type Slot struct {
	// Limit is the limit's name: the class, or class:value; for a
	// queue's limit, the queue.
	Limit string
	// Queue is set when the limit is a queue's, not a class's.
	Queue bool
	// Member is the holder: worker id and the SHA-1 of the record that
	// holds the job, so that a job resumed after a lost reply names the
	// slot its reserve took.
	Member string
}

// key is the sorted set s is a member of.
func (s *Slot) key(ns string) string {
	if s.Queue {
		return QueueConcurrencyKey(ns, s.Limit)
	}
	return ConcurrencyKey(ns, s.Limit)
}

// limitBelief is the Fetcher's view of the limits it found full: until
// when it passes over their jobs without asking.
type limitBelief map[string]time.Time

// fullFor is how long a worker believes a concurrency limit full after
// an acquire found it so, unless it frees a slot of it itself: the
// longest a freed slot waits for a worker that passed over its jobs.
const fullFor = 250 * time.Millisecond

// limitsArg is the reserve script's limits argument for l with the
// limits believed full at now ("" without limits: the script then does
// exactly what it does without them).
func (f *Fetcher) limitsArg(l *Limits, now time.Time) string {
	if len(f.full) == 0 {
		if l == nil {
			return ""
		}
		return l.spec
	}
	// Limits found full, also those of jobs whose payload set their
	// own (with no limits configured): their jobs are passed over.
	var b strings.Builder
	if l != nil {
		b.WriteString(l.spec)
	}
	for name, until := range f.full {
		if now.After(until) {
			delete(f.full, name)
			continue
		}
		b.WriteString("F\t")
		b.WriteString(name)
		b.WriteString("\n")
	}
	return b.String()
}

// holdLua defines what taking a job does, for the reserve and the
// acquire scripts alike, so that the worker:<id> record the outcome
// script compares (by its SHA-1) is built in one place:
// resqued_take_at removes the entry at index idx of list k (a mark,
// then LREM, out of the middle); resqued_hold writes entry v, taken
// from queue key k, into worker:<id> kw as Ruby Resque's record
// {"queue","run_at","payload"} and returns the record and the job's id
// ("" for none). ok and p are v decoded (pcall(cjson.decode, v)).
const holdLua = `
local function resqued_take_at(k, idx)
  if idx == 0 then
    redis.call('LPOP', k)
  else
    local mark = '\0resqued-taken'
    redis.call('LSET', k, idx, mark)
    redis.call('LREM', k, 1, mark)
  end
end
local function resqued_hold(kw, k, v, ok, p, prefix, runat)
  local embedded = v
  if not ok then embedded = cjson.encode(v) end
  local q = string.sub(k, string.len(prefix) + 1)
  local rec = '{"queue":' .. cjson.encode(q) .. ',"run_at":"' .. runat .. '","payload":' .. embedded .. '}'
  redis.call('SET', kw, rec)
  local sid = ''
  if ok and type(p) == 'table' and type(p['id']) == 'string' and p['id'] ~= '' then sid = p['id'] end
  return rec, sid
end
`

// limitsLua defines resqued_limits(spec), which reads the limits
// argument (nil when it is empty), and resqued_limit_pick(k, q, lim), the
// reserve step's take from queue k (named q) under limits: it returns the
// entry taken (already removed from k), or nil and a candidate reply
// {'limited', queue key, index, entry, concurrency limit name, rate limit
// name, the payload's own concurrency, the class, the queue's limit name}
// for a job of a limited class or queue whose limits are not believed
// full, or nil, nil and true when only jobs whose limits are full are in
// the first entries of k (or k's own limit is believed full). With no
// limit believed full it costs an LPOP (and an LPUSH of a limited job back
// where it was); with one, an LRANGE of the first 50 entries.
const limitsLua = `
local function resqued_limits(spec)
  if spec == '' then return nil end
  local lim = {classes = {}, queues = {}, full = {}, anyfull = false, anyclass = false}
  for line in string.gmatch(spec, '[^\n]+') do
    local kind, a, b, c = string.match(line, '^(%a)\t([^\t]*)\t?([^\t]*)\t?([^\t]*)$')
    if kind == 'L' then
      lim.classes[a] = {b, c}
      lim.anyclass = true
    elseif kind == 'Q' then
      lim.queues[a] = true
    elseif kind == 'F' then
      lim.full[a] = true
      lim.anyfull = true
    end
  end
  return lim
end
local function resqued_limit_name(class, path, args)
  if path == '-' then return nil end
  if path == '=' then return class end
  local v = args
  for step in string.gmatch(string.sub(path, 2), '[^.]+') do
    if type(v) ~= 'table' then return nil end
    local n = tonumber(step)
    if n and v == args then v = v[n] else v = v[step] end
  end
  local t = type(v)
  if t == 'number' or t == 'boolean' or (t == 'string' and not string.find(v, '[\t\n]')) then return class .. ':' .. tostring(v) end
  return nil
end
-- resqued_payload_limit is the concurrency a payload sets for its own
-- job ("concurrency": N, a whole number from 1), or 0.
local function resqued_payload_limit(p)
  local n = p['concurrency']
  if type(n) == 'number' and n >= 1 and n == math.floor(n) then return n end
  return 0
end
-- resqued_limit_of returns the limit names of entry v ({concurrency,
-- rate, the payload's own concurrency, class, queue}, '' for none) when
-- it is of a limited class or taken from limited queue q (nil: k is not
-- limited), whether one of its class's limits is believed full, and v
-- decoded, when it decoded v (the take then need not decode it again).
local function resqued_limit_of(v, lim, q)
  -- Neither a limited class nor a limited queue could apply: no decode.
  if not q and not lim.anyclass and not string.find(v, '"concurrency"', 1, true) then return nil, false end
  local ok, p = pcall(cjson.decode, v)
  if not ok then return nil, false end
  if type(p) ~= 'table' or type(p['class']) ~= 'string' then return nil, false, p end
  local own = resqued_payload_limit(p)
  local paths = lim.classes[p['class']]
  if not paths then
    if own == 0 and not q then return nil, false, p end
    paths = {'-', '-'}
    if own > 0 then paths = {'=', '-'} end
  elseif own > 0 and paths[1] == '-' then
    paths = {'=', paths[2]}
  end
  local args = p['args']
  if type(args) ~= 'table' then args = {} end
  local c = resqued_limit_name(p['class'], paths[1], args)
  local r = resqued_limit_name(p['class'], paths[2], args)
  if not c and not r and not q then return nil, false, p end
  if (c and lim.full['c:' .. c]) or (r and lim.full['r:' .. r]) then return nil, true end
  return {c or '', r or '', own, p['class'], q or ''}, false
end
local function resqued_limit_pick(k, qname, lim)
  local q = nil
  if lim.queues[qname] then
    -- A limited queue believed full is passed over whole, like a
    -- paused one, so that the queues after it still run.
    if lim.full['q:' .. qname] then return nil, nil, redis.call('EXISTS', k) == 1 end
    q = qname
  end
  if not lim.anyfull then
    local v = redis.call('LPOP', k)
    if not v then return nil end
    local c, _, p = resqued_limit_of(v, lim, q)
    if c then
      redis.call('LPUSH', k, v)
      return nil, {'limited', k, 0, v, c[1], c[2], c[3], c[4], c[5]}
    end
    return v, nil, nil, p
  end
  local blocked = false
  for i, v in ipairs(redis.call('LRANGE', k, 0, 49)) do
    local c, full, p = resqued_limit_of(v, lim, q)
    if full then
      blocked = true
    elseif c then
      return nil, {'limited', k, i - 1, v, c[1], c[2], c[3], c[4], c[5]}
    else
      resqued_take_at(k, i - 1)
      return v, nil, nil, p
    end
  end
  return nil, nil, blocked
end
`

// acquireScript takes the candidate job a reserve handed back (entry
// ARGV[3], last seen at index ARGV[4] of queue KEYS[3]) into worker:<id>
// (KEYS[1]) together with a slot of its concurrency limit (KEYS[5], at
// most ARGV[7] holders; 0: none), a slot of its queue's limit (KEYS[11],
// at most ARGV[13] holders; 0: none) and a start of its rate limit
// (KEYS[6], at most ARGV[8] starts per ARGV[9] ms; 0: none), in one step,
// or nothing. KEYS[2] is the owner lease (token and TTL ARGV[1], ARGV[2]),
// KEYS[4] DelayedStatusAnyKey; ARGV[5] run_at, ARGV[6] the queue key
// prefix, ARGV[10] the worker id, ARGV[11] how long a slot lasts unless
// renewed (ms). KEYS[7] and KEYS[12] hold the slots (members ARGV[12],
// ARGV[14]) the worker holds and is done with (its job's outcome is
// recorded): freed first, so that the worker's own last job does not
// count against its next.
//
// Slots and starts are scored in Redis's own clock (TIME), the same for
// every host. It returns what resqued_reserve does for a job taken, or
// {'full', 'c'}, {'full', 'q'} (the queue's limit), {'full', 'r', ms
// until a start frees}, {'gone'} (the entry was taken meanwhile),
// {'held'} (worker:<id> holds a job already), {'notowner'}. KEYS[9] is
// the queue's pause key and KEYS[10] the pause-all-workers flag: a pause
// set since the reserve looked takes nothing ({'gone'}). A start refused
// by the rate limit counts in KEYS[8] (RateLimitedKey).
var acquireScript = redis.NewScript(12, ownerLua+holdLua+`
if not resqued_owner(KEYS[2], ARGV[1], ARGV[2]) then return {'notowner'} end
if ARGV[12] ~= '' then redis.call('ZREM', KEYS[7], ARGV[12]) end
if ARGV[14] ~= '' then redis.call('ZREM', KEYS[12], ARGV[14]) end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'held'} end
-- Paused since the reserve looked (its queue, or every worker): taken
-- by nobody; the next reserve passes over it.
if redis.call('EXISTS', KEYS[9]) == 1 then return {'gone'} end
local all = redis.call('GET', KEYS[10])
if all and string.lower(all) == 'true' then return {'gone'} end
local k, v = KEYS[3], ARGV[3]
local idx = tonumber(ARGV[4])
if redis.call('LINDEX', k, idx) ~= v then
  idx = redis.call('LPOS', k, v, 'MAXLEN', 1000)
  if not idx then return {'gone'} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n, rn, per, qn = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[13])
if n > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) >= n then return {'full', 'c'} end
end
if qn > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', now)
  if redis.call('ZCARD', KEYS[11]) >= qn then return {'full', 'q'} end
end
if rn > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - per)
  if redis.call('ZCARD', KEYS[6]) >= rn then
    local first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
    local wait = 1
    if first[2] then wait = math.max(1, tonumber(first[2]) + per - now) end
    redis.call('INCR', KEYS[8])
    return {'full', 'r', wait}
  end
end
resqued_take_at(k, idx)
local ok, p = pcall(cjson.decode, v)
local rec, sid = resqued_hold(KEYS[1], k, v, ok, p, ARGV[6], ARGV[5])
local sha = redis.sha1hex(rec)
local member = ARGV[10] .. ':' .. sha
if n > 0 then
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[11]), member)
  redis.call('PEXPIRE', KEYS[5], ARGV[11])
end
if qn > 0 then
  redis.call('ZADD', KEYS[11], now + tonumber(ARGV[11]), member)
  redis.call('PEXPIRE', KEYS[11], ARGV[11])
end
if rn > 0 then
  redis.call('ZADD', KEYS[6], now, member)
  redis.call('PEXPIRE', KEYS[6], per)
end
local any = 0
if sid == '' then any = redis.call('EXISTS', KEYS[4]) end
return {k, v, 0, sha, sid, any, 0, ''}
`)

// beforeAcquire, when set (by tests), runs between a reserve that
// handed back a candidate and the acquire step that takes it.
var beforeAcquire func()

// errLimited says a reserve's candidate was not taken (its limit was
// full, or another worker took it first): reserve again.
var errLimited = errors.New("limited")

// acquire runs acquireScript for the candidate reply (the reserve's
// {'limited', ...}) and returns what it took, or errLimited.
func (f *Fetcher) acquire(conn redis.Conn, queues []string, reply []interface{}, opt ReserveOptions, now time.Time) (*Reserved, error) {
	if len(reply) != 9 {
		return nil, fmt.Errorf("%s: unexpected reply", reserveWhat(queues))
	}
	own, _ := reply[6].(int64) // the payload's own "concurrency"
	key, _ := reply[1].([]byte)
	idx, _ := reply[2].(int64)
	entry, _ := reply[3].([]byte)
	conc, _ := reply[4].([]byte)
	rate, _ := reply[5].([]byte)
	class, _ := reply[7].([]byte)
	qlimit, _ := reply[8].([]byte)
	queue := strings.TrimPrefix(string(key), QueuePrefix(f.c.ns))
	cl, _ := opt.Limits.Class(string(class))
	n, rn, qn := 0, 0, 0
	if len(conc) > 0 {
		n = cl.Concurrency
		if own > 0 {
			n = int(own)
		}
	}
	if len(rate) > 0 {
		rn = cl.Rate
	}
	if len(qlimit) > 0 {
		qn, _ = opt.Limits.Queue(string(qlimit))
	}
	token, ttl := f.lease.ownerArgs()
	// The slots of the worker's last job, freed in this step; unused
	// keys are declared all the same (a key of this job's limits).
	prevKey, prevMember := ConcurrencyKey(f.c.ns, string(conc)), ""
	prevQKey, prevQMember := QueueConcurrencyKey(f.c.ns, queue), ""
	var prevSlots []*Slot
	if f.done != nil {
		prevSlots = f.done.Slots
	}
	for _, s := range prevSlots {
		if s.Queue {
			prevQKey, prevQMember = s.key(f.c.ns), s.Member
		} else {
			prevKey, prevMember = s.key(f.c.ns), s.Member
		}
	}
	if beforeAcquire != nil {
		beforeAcquire()
	}
	sent := time.Now()
	v, err := redis.Values(acquireScript.Do(conn, WorkerKey(f.c.ns, f.worker), OwnerKey(f.c.ns, f.worker), string(key),
		DelayedStatusAnyKey(f.c.ns), ConcurrencyKey(f.c.ns, string(conc)), RateKey(f.c.ns, string(rate)), prevKey,
		RateLimitedKey(f.c.ns, string(rate)), QueuePauseKey(f.c.ns, queue), PauseAllKey(f.c.ns),
		QueueConcurrencyKey(f.c.ns, queue), prevQKey,
		token, ttl, entry, idx, now.UTC().Format(RunAtFormat), QueuePrefix(f.c.ns), n, rn, cl.Per.Milliseconds(),
		f.worker, f.slotTTL().Milliseconds(), prevMember, qn, prevQMember))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", reserveWhat(queues), err)
	}
	f.lease.renewedAt(sent, v)
	var tag []byte
	if len(v) > 0 {
		tag, _ = v[0].([]byte)
	}
	if f.done != nil && string(tag) != "notowner" {
		// The script freed them first: the worker need not free them
		// again (Worker.freeSlot finds none), nor the lease renew them.
		f.lease.unhold(prevSlots)
		f.done.slotsFreed = true
	}
	f.done = nil
	if len(v) > 0 {
		switch string(tag) {
		case "full":
			kind, _ := v[1].([]byte)
			if f.full == nil {
				f.full = limitBelief{}
			}
			switch string(kind) {
			case "r":
				ms, _ := redis.Int64(v[2], nil)
				f.full["r:"+string(rate)] = time.Now().Add(time.Duration(ms) * time.Millisecond)
			case "q":
				f.full["q:"+queue] = time.Now().Add(fullFor)
			default:
				f.full["c:"+string(conc)] = time.Now().Add(fullFor)
			}
			return nil, errLimited
		case "gone", "held":
			return nil, errLimited
		}
	}
	r, err := f.taken(conn, queues, v, now, opt)
	if err == nil {
		member := f.worker + ":" + r.Record
		if n > 0 {
			r.Slots = append(r.Slots, &Slot{Limit: string(conc), Member: member})
		}
		if qn > 0 {
			r.Slots = append(r.Slots, &Slot{Limit: queue, Queue: true, Member: member})
		}
		f.lease.hold(f.c.ns, r.Slots)
	}
	return r, err
}

// slotTTL is how long a slot lasts unless renewed: the lease's TTL.
func (f *Fetcher) slotTTL() time.Duration {
	if f.lease != nil && f.lease.TTL > 0 {
		return f.lease.TTL
	}
	return 15 * time.Second
}

// resumedSlot gives a job resumed from worker:<id> (its reserve's reply
// was lost) the slots that reserve took, taking them again if they
// lapsed meanwhile: the job runs either way, and is counted.
func (f *Fetcher) resumedSlot(conn redis.Conn, r *Reserved, opt ReserveOptions) {
	if opt.Limits == nil && !bytes.Contains(r.Payload, []byte(`"concurrency"`)) {
		return
	}
	var p struct {
		Class       string          `json:"class"`
		Args        json.RawMessage `json:"args"`
		Concurrency float64         `json:"concurrency"`
	}
	if json.Unmarshal(r.Payload, &p) != nil {
		return
	}
	conc, _, _ := opt.Limits.Names(p.Class, p.Args)
	if conc == "" && p.Concurrency >= 1 && p.Concurrency == math.Trunc(p.Concurrency) {
		conc = p.Class
	}
	member := f.worker + ":" + r.Record
	if conc != "" {
		r.Slots = append(r.Slots, &Slot{Limit: conc, Member: member})
	}
	if _, ok := opt.Limits.Queue(r.Queue); ok {
		r.Slots = append(r.Slots, &Slot{Limit: r.Queue, Queue: true, Member: member})
	}
	if len(r.Slots) == 0 {
		return
	}
	_, _ = slotRenewScript.Do(conn, slotRenewArgs(f.c.ns, r.Slots, f.slotTTL(), "")...)
	f.lease.hold(f.c.ns, r.Slots)
}

// slotRenewScript sets slot member ARGV[2+i] of KEYS[i], for each i, to
// lapse ARGV[1] ms from now (Redis's clock); with ARGV[2] "XX", only
// while it is still held.
var slotRenewScript = redis.NewScript(-1, `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for i, k in ipairs(KEYS) do
  if ARGV[2] == 'XX' then
    n = n + redis.call('ZADD', k, 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[2 + i])
  else
    n = n + redis.call('ZADD', k, now + tonumber(ARGV[1]), ARGV[2 + i])
  end
  redis.call('PEXPIRE', k, ARGV[1])
end
return n
`)

// slotRenewArgs are slotRenewScript's arguments for slots, to lapse ttl
// from now; xx "XX" renews only slots still held.
func slotRenewArgs(ns string, slots []*Slot, ttl time.Duration, xx string) []interface{} {
	args := make([]interface{}, 0, 3+2*len(slots))
	args = append(args, len(slots))
	for _, s := range slots {
		args = append(args, s.key(ns))
	}
	args = append(args, ttl.Milliseconds(), xx)
	for _, s := range slots {
		args = append(args, s.Member)
	}
	return args
}

// doneWith tells the Fetcher that r's outcome is recorded: the next acquire
// frees r's slots in its own step, and marks them so (SlotsFreed), so
// that the worker does not free them a second time (FinishAndReserve
// calls it).
func (f *Fetcher) doneWith(r *Reserved) {
	if r != nil && len(r.Slots) > 0 {
		f.done = r
	}
}

// SlotsFreed reports whether r's Slots were freed already, by the step
// that recorded its outcome and took the worker's next job.
func (r *Reserved) SlotsFreed() bool { return r.slotsFreed }

// releaseSlotsScript frees slot member ARGV[i] of KEYS[i], for each i.
var releaseSlotsScript = redis.NewScript(-1, `
for i, k in ipairs(KEYS) do redis.call('ZREM', k, ARGV[i]) end
return 1
`)

// ReleaseSlots frees the concurrency slots of a job (Reserved.Slots),
// all in one step, once its outcome is recorded (or the job given back).
// It is safe to repeat: a slot already freed (or lapsed) stays so. A
// slot not freed lapses within the lease TTL.
func (c *Client) ReleaseSlots(ctx context.Context, l *Lease, slots []*Slot) error {
	if len(slots) == 0 {
		return nil
	}
	l.unhold(slots)
	args := make([]interface{}, 0, 1+2*len(slots))
	args = append(args, len(slots))
	for _, s := range slots {
		args = append(args, s.key(c.ns))
	}
	for _, s := range slots {
		args = append(args, s.Member)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("free slots of %s: %w", SlotNames(slots), err)
	}
	defer conn.Close()
	if _, err := releaseSlotsScript.Do(conn, args...); err != nil {
		return fmt.Errorf("free slots of %s: %w", SlotNames(slots), err)
	}
	return nil
}

// SlotNames names slots for messages and logs: the limits' names, a
// queue's as "queue q", joined by ", ".
func SlotNames(slots []*Slot) string {
	names := make([]string, len(slots))
	for i, s := range slots {
		names[i] = s.Limit
		if s.Queue {
			names[i] = "queue " + s.Limit
		}
	}
	return strings.Join(names, ", ")
}

// LimitUse is what one limit looks like now.
type LimitUse struct {
	// Limit is its name: the class, or class:value for a key path, or
	// queue:q for queue q's limit.
	Limit string `json:"limit"`
	// Class is the class it limits; Queue the queue, for a queue's
	// limit (Class is then empty).
	Class string `json:"class"`
	Queue string `json:"queue,omitempty"`
	// Concurrency is the configured most running at once (0: none);
	// InUse how many slots are held now.
	Concurrency int `json:"concurrency,omitempty"`
	InUse       int `json:"in_use"`
	// Rate is the configured most starts per Per (0: none); Started the
	// starts within the last Per.
	Rate          int           `json:"rate,omitempty"`
	Per           time.Duration `json:"-"`
	PeriodSeconds float64       `json:"period_seconds,omitempty"`
	Started       int           `json:"started,omitempty"`
	// RateLimited counts the starts the rate limit held back, ever
	// (RateLimitedKey): a job that waits is counted at each look.
	RateLimited int64 `json:"rate_limited,omitempty"`
	// Waiting is how many jobs of the class are queued, counted in the
	// first 1000 entries of each of queues (an estimate past that); for
	// a queue's limit, the jobs in the queue.
	Waiting int `json:"waiting"`
}

// LimitsInUse reads the state of every limit of l: one row per class,
// and one per key value seen (a limit with a key path has a set per
// value), then one per limited queue. queues are counted for Waiting.
func (c *Client) LimitsInUse(ctx context.Context, l *Limits, queues []string) ([]LimitUse, error) {
	if l == nil {
		return nil, nil
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("read limits: %w", err)
	}
	defer conn.Close()
	waiting := map[string]int{}
	if len(l.classes) == 0 {
		queues = nil // only class rows show jobs waiting by class
	}
	for _, q := range queues {
		entries, err := redis.ByteSlices(conn.Do("LRANGE", QueueKey(c.ns, q), 0, 999))
		if err != nil {
			return nil, fmt.Errorf("read limits: %w", err)
		}
		for _, e := range entries {
			var p struct {
				Class string `json:"class"`
			}
			if json.Unmarshal(e, &p) == nil {
				if _, ok := l.classes[p.Class]; ok {
					waiting[p.Class]++
				}
			}
		}
	}
	t, err := redisTime(conn)
	if err != nil {
		return nil, fmt.Errorf("read limits: %w", err)
	}
	now := t.UnixMilli()
	var out []LimitUse
	for _, class := range l.Classes() {
		cl := l.classes[class]
		rows := map[string]*LimitUse{}
		row := func(name string) *LimitUse {
			if rows[name] == nil {
				rows[name] = &LimitUse{Limit: name, Class: class, Concurrency: cl.Concurrency, Rate: cl.Rate, Per: cl.Per,
					PeriodSeconds: cl.Per.Seconds(), Waiting: waiting[class]}
			}
			return rows[name]
		}
		if cl.Concurrency > 0 {
			for _, name := range limitNames(ctx, conn, c.ns, class, cl.ConcurrencyKey != nil, ConcurrencyKey) {
				n, err := redis.Int(conn.Do("ZCOUNT", ConcurrencyKey(c.ns, name), fmt.Sprintf("(%d", now), "+inf"))
				if err != nil {
					return nil, fmt.Errorf("read limits: %w", err)
				}
				row(name).InUse = n
			}
		}
		if cl.Rate > 0 && cl.Per > 0 {
			for _, name := range limitNames(ctx, conn, c.ns, class, cl.RateKey != nil, RateKey) {
				n, err := redis.Int(conn.Do("ZCOUNT", RateKey(c.ns, name), fmt.Sprintf("(%d", now-cl.Per.Milliseconds()), "+inf"))
				if err != nil {
					return nil, fmt.Errorf("read limits: %w", err)
				}
				row(name).Started = n
				held, err := redis.Int64(conn.Do("GET", RateLimitedKey(c.ns, name)))
				if err != nil && !errors.Is(err, redis.ErrNil) {
					return nil, fmt.Errorf("read limits: %w", err)
				}
				row(name).RateLimited = held
			}
		}
		if len(rows) == 0 {
			row(class)
		}
		names := make([]string, 0, len(rows))
		for n := range rows {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			out = append(out, *rows[n])
		}
	}
	for _, q := range l.Queues() {
		n, err := redis.Int(conn.Do("ZCOUNT", QueueConcurrencyKey(c.ns, q), fmt.Sprintf("(%d", now), "+inf"))
		if err != nil {
			return nil, fmt.Errorf("read limits: %w", err)
		}
		size, err := redis.Int(conn.Do("LLEN", QueueKey(c.ns, q)))
		if err != nil {
			return nil, fmt.Errorf("read limits: %w", err)
		}
		out = append(out, LimitUse{Limit: "queue:" + q, Queue: q, Concurrency: l.queues[q], InUse: n, Waiting: size})
	}
	return out, nil
}

// limitNames lists the limit names of class, whose keys key builds: the
// class alone, or with a key path every class:value that has a set
// (found with SCAN, an operator's read; what it found before an error).
func limitNames(ctx context.Context, conn redis.Conn, ns, class string, keyed bool, key func(ns, name string) string) []string {
	if !keyed {
		return []string{class}
	}
	var names []string
	prefix := key(ns, "")
	_ = scanPrefix(ctx, conn, key(ns, class)+":", func(k string) { names = append(names, strings.TrimPrefix(k, prefix)) })
	return names
}

// limitWait is how long Wait waits while jobs are held back by full
// limits: until the first belief lapses, between 10 ms and fullFor.
func (f *Fetcher) limitWait() time.Duration {
	wait := fullFor
	now := time.Now()
	for _, until := range f.full {
		wait = min(wait, until.Sub(now))
	}
	return max(wait, 10*time.Millisecond)
}

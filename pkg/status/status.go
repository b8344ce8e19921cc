package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Code is a php-resque status number.
type Code int

// The php-resque status codes.
const (
	Waiting  Code = 1
	Running  Code = 2
	Failed   Code = 3
	Complete Code = 4
)

// TTL is how long a status survives after its job ended.
const TTL = 24 * time.Hour

// ErrNotTracked is returned for a token that has no status key: never
// tracked, stopped, or expired.
var ErrNotTracked = errors.New("job not tracked")

// String returns the lower-case name used on the command line.
func (c Code) String() string {
	switch c {
	case Waiting:
		return "waiting"
	case Running:
		return "running"
	case Failed:
		return "failed"
	case Complete:
		return "complete"
	}
	return "unknown(" + strconv.Itoa(int(c)) + ")"
}

// Final reports whether the job has ended.
func (c Code) Final() bool { return c == Failed || c == Complete }

// Key is the Redis key of job id's status.
func Key(ns, id string) string { return ns + ":job:" + id + ":status" }

// Status is a decoded status value.
type Status struct {
	Code    Code  `json:"status"`
	Updated int64 `json:"updated"`
	Started int64 `json:"started,omitempty"`
}

// Initial is the value written when a tracked job is enqueued at now.
func Initial(now time.Time) []byte {
	s := now.Unix()
	b, _ := json.Marshal(Status{Code: Waiting, Updated: s, Started: s})
	return b
}

// Tracker reads and updates statuses in one namespace.
type Tracker struct {
	pool *redis.Pool
	ns   string
}

// New returns a Tracker for namespace ns (e.g. "resque").
func New(pool *redis.Pool, ns string) *Tracker { return &Tracker{pool: pool, ns: ns} }

// Get returns the status of job id, or ErrNotTracked.
func (t *Tracker) Get(ctx context.Context, id string) (Status, error) {
	conn, err := t.pool.GetContext(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("get status %s: %w", id, err)
	}
	defer conn.Close()
	b, err := redis.Bytes(conn.Do("GET", Key(t.ns, id)))
	if errors.Is(err, redis.ErrNil) {
		return Status{}, fmt.Errorf("get status %s: %w", id, ErrNotTracked)
	}
	if err != nil {
		return Status{}, fmt.Errorf("get status %s: %w", id, err)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return Status{}, fmt.Errorf("get status %s: decode %q: %w", id, b, err)
	}
	return s, nil
}

// UpdateLua defines the Lua function resqued_status(key, code, now,
// ttl, detail): it sets status and updated in place, only if key exists,
// with an expiry when ttl > 0 (and none otherwise, as php-resque's SET
// does), and returns 1 if it did. Everything else in the value is kept
// byte for byte. detail, when given and not empty, is a JSON object of
// resqued's fields (an encoded Detail) merged in first, exactly as
// Annotate merges it. pkg/queue includes it in the script that records a
// job's outcome, so the status and its detail change in the same atomic
// step.
const UpdateLua = mergeLua + CodeLua + `
local function resqued_status(key, code, now, ttl, detail)
  local cur = redis.call('GET', key)
  if not cur then return 0 end
  if detail and detail ~= '' then cur = resqued_merge(cur, detail) end
  cur = resqued_status_code(cur, code, now)
  if tonumber(ttl) > 0 then
    redis.call('SET', key, cur, 'EX', ttl)
  else
    redis.call('SET', key, cur)
  end
  return 1
end
`

// CodeLua defines resqued_status_code(cur, code, now): the status value
// cur with its status set to code and updated to now, in place. UpdateLua
// includes it; a script with MarkLua and without UpdateLua needs it.
const CodeLua = `
local function resqued_status_code(cur, code, now)
  local n1, n2
  cur, n1 = string.gsub(cur, '"status"%s*:%s*%d+', '"status":' .. code, 1)
  if n1 == 0 then
    return '{"status":' .. code .. ',"updated":' .. now .. '}'
  end
  cur, n2 = string.gsub(cur, '"updated"%s*:%s*[%d%.eE%+%-]+', '"updated":' .. now, 1)
  if n2 == 0 then
    cur = string.gsub(cur, '^%s*{', '{"updated":' .. now .. ',', 1)
  end
  return cur
end
`

// MarkLua defines resqued_mark(key, code, now): resqued_status for a
// code that is not final and no detail (the running mark), without the
// merge machinery, so the script that marks every tracked job running
// is small. It needs CodeLua (or UpdateLua) before it.
const MarkLua = `
local function resqued_mark(key, code, now)
  local cur = redis.call('GET', key)
  if not cur then return 0 end
  redis.call('SET', key, resqued_status_code(cur, code, now))
  return 1
end
`

// mergeLua defines resqued_merge(cur, add), merge in Lua: the members of
// the JSON object add set in the JSON object cur, php-resque's fields
// first in their usual order and the rest sorted bytewise, each value as
// written. A cur that is not a JSON object comes back unchanged.
const mergeLua = `
local function resqued_str_end(s, i)
  local j = i + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if not k then return nil end
    if string.sub(s, k, k) == '"' then return k end
    j = k + 2
  end
end
local function resqued_value_end(s, i)
  local c = string.sub(s, i, i)
  if c == '"' then return resqued_str_end(s, i) end
  if c == '{' or c == '[' then
    local depth, j = 0, i
    while true do
      local k = string.find(s, '[%[%]{}"]', j)
      if not k then return nil end
      local d = string.sub(s, k, k)
      if d == '"' then
        k = resqued_str_end(s, k)
        if not k then return nil end
      elseif d == '{' or d == '[' then
        depth = depth + 1
      else
        depth = depth - 1
        if depth == 0 then return k end
      end
      j = k + 1
    end
  end
  local k = string.find(s, '[,}%]%s]', i)
  if not k or k == i then return nil end
  return k - 1
end
-- resqued_members returns the members of the JSON object s as a table
-- key (as written, without its quotes) -> value (as written) and the
-- keys in order, or nil when s is not a JSON object.
local function resqued_members(s)
  local ok, v = pcall(cjson.decode, s)
  if not ok or type(v) ~= 'table' then return nil end
  local i = string.find(s, '%S')
  if not i or string.sub(s, i, i) ~= '{' then return nil end
  local vals, keys = {}, {}
  i = string.find(s, '%S', i + 1)
  if i and string.sub(s, i, i) == '}' then return vals, keys end
  while i and string.sub(s, i, i) == '"' do
    local ke = resqued_str_end(s, i)
    if not ke then return nil end
    local key = string.sub(s, i + 1, ke - 1)
    i = string.find(s, '%S', ke + 1)
    if not i or string.sub(s, i, i) ~= ':' then return nil end
    i = string.find(s, '%S', i + 1)
    if not i then return nil end
    local ve = resqued_value_end(s, i)
    if not ve then return nil end
    if vals[key] == nil then table.insert(keys, key) end
    vals[key] = string.sub(s, i, ve)
    i = string.find(s, '%S', ve + 1)
    if not i then return nil end
    local c = string.sub(s, i, i)
    if c == '}' then return vals, keys end
    if c ~= ',' then return nil end
    i = string.find(s, '%S', i + 1)
  end
  return nil
end
local function resqued_bytes_less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function resqued_merge(cur, add)
  local vals, keys = resqued_members(cur)
  local avals, akeys = resqued_members(add)
  if not vals or not avals then return cur end
  for _, k in ipairs(akeys) do
    if vals[k] == nil then table.insert(keys, k) end
    vals[k] = avals[k]
  end
  local first = {status = true, updated = true, started = true}
  local rest = {}
  for _, k in ipairs(keys) do
    if not first[k] then table.insert(rest, k) end
  end
  table.sort(rest, resqued_bytes_less)
  local out = {}
  for _, k in ipairs({'status', 'updated', 'started'}) do
    if vals[k] ~= nil then table.insert(out, '"' .. k .. '":' .. vals[k]) end
  end
  for _, k in ipairs(rest) do table.insert(out, '"' .. k .. '":' .. vals[k]) end
  return '{' .. table.concat(out, ',') .. '}'
end
`

var updateScript = redis.NewScript(1, UpdateLua+`return resqued_status(KEYS[1], ARGV[1], ARGV[2], ARGV[3])`)

// TTLFor is the expiry, in seconds, an update to code sets: TTL for final
// codes, none (0) otherwise.
func TTLFor(code Code) int {
	if code.Final() {
		return int(TTL / time.Second)
	}
	return 0
}

// Update moves job id to code at now. It reports whether the job was
// tracked; an untracked job is left alone. Final codes start the TTL.
func (t *Tracker) Update(ctx context.Context, id string, code Code, now time.Time) (bool, error) {
	if id == "" {
		return false, nil
	}
	conn, err := t.pool.GetContext(ctx)
	if err != nil {
		return false, fmt.Errorf("update status %s: %w", id, err)
	}
	defer conn.Close()
	n, err := redis.Int(updateScript.Do(conn, Key(t.ns, id), int(code), now.Unix(), TTLFor(code)))
	if err != nil {
		return false, fmt.Errorf("update status %s: %w", id, err)
	}
	return n == 1, nil
}

// Stop forgets job id's status at once (php-resque's stop()).
func (t *Tracker) Stop(ctx context.Context, id string) error {
	conn, err := t.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("stop status %s: %w", id, err)
	}
	defer conn.Close()
	n, err := redis.Int(conn.Do("DEL", Key(t.ns, id)))
	if err != nil {
		return fmt.Errorf("stop status %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("stop status %s: %w", id, ErrNotTracked)
	}
	return nil
}

package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// What survives a Ruby resque-scheduler. When Ruby moves a delayed item to
// its queue it rebuilds the job from "class", "args" and "queue" alone
// (enqueue_from_config in lib/resque/scheduler.rb), so the "id" (status
// token) and "attempt" resqued put in the item are lost. Both are kept
// outside the payload too: the attempt in resque-retry's own counter key,
// the token in a side index keyed by a digest of queue, class and args.

// DelayedStatusMargin is how long a delayed-status index entry outlives
// its due time, and a resque-retry counter outlives its retry's: a
// scheduler that was down that long loses the token (the status stays
// waiting) and the count (the job starts again at attempt 1).
const DelayedStatusMargin = 7 * 24 * time.Hour

// RetryIdentifier is resque-retry's retry_identifier(*args)
// (lib/resque/plugins/retry.rb): Digest::SHA1.hexdigest(args.join('-')),
// or "" when the joined string is empty. Array#join turns each decoded
// JSON value into Ruby's to_s: strings as they are, integers in decimal,
// floats as Float#to_s ("1.0", "1.0e+20"), nil as "", true/false, nested
// arrays joined with "-" again, and hashes as Hash#inspect in Ruby 3.3 and
// earlier ({"a"=>1}; Ruby 3.4 writes {"a" => 1}, so a job with hash args
// gets another key there).
func RetryIdentifier(args json.RawMessage) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		return "", fmt.Errorf("retry identifier: decode args: %w", err)
	}
	a, ok := v.([]interface{})
	if !ok {
		return "", errors.New("retry identifier: args are not an array")
	}
	var b strings.Builder
	rubyJoin(&b, a)
	if b.Len() == 0 {
		return "", nil
	}
	return sha1Hex([]byte(b.String())), nil
}

// rubyJoin is Array#join('-').
func rubyJoin(b *strings.Builder, a []interface{}) {
	for i, e := range a {
		if i > 0 {
			b.WriteByte('-')
		}
		if sub, ok := e.([]interface{}); ok {
			rubyJoin(b, sub)
			continue
		}
		rubyToS(b, e, false)
	}
}

// rubyToS writes v's to_s (inspect when inspect is set) as Ruby prints
// the value JSON.parse made of it.
func rubyToS(b *strings.Builder, v interface{}, inspect bool) {
	switch v := v.(type) {
	case nil:
		if inspect {
			b.WriteString("nil")
		}
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		if inspect {
			rubyInspectString(b, v)
		} else {
			b.WriteString(v)
		}
	case json.Number:
		b.WriteString(rubyNumber(string(v)))
	case []interface{}:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			rubyToS(b, e, true)
		}
		b.WriteByte(']')
	case orderedObject:
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			rubyInspectString(b, k)
			b.WriteString("=>")
			rubyToS(b, v.vals[i], true)
		}
		b.WriteByte('}')
	}
}

// orderedObject is a JSON object with its keys in document order, as
// Ruby's JSON.parse builds its Hash.
type orderedObject struct {
	keys []string
	vals []interface{}
}

// decodeOrdered reads one JSON value, objects as orderedObject, numbers
// as json.Number.
func decodeOrdered(dec *json.Decoder) (interface{}, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t {
	case json.Delim('['):
		a := []interface{}{}
		for dec.More() {
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	case json.Delim('{'):
		var o orderedObject
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			ks, _ := k.(string)
			o.keys, o.vals = append(o.keys, ks), append(o.vals, v)
		}
		_, err := dec.Token()
		return o, err
	}
	return t, nil
}

// rubyNumber is Integer#to_s or Float#to_s of a JSON number: Ruby's JSON
// makes a Float of a number with a fraction or an exponent.
func rubyNumber(lit string) string {
	if !strings.ContainsAny(lit, ".eE") {
		n, ok := new(big.Int).SetString(lit, 10)
		if !ok {
			return lit
		}
		return n.String()
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !math.IsInf(f, 0) {
		return lit
	}
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	// Float#to_s (flo_to_s): the shortest digits; fixed notation when
	// the decimal exponent is within -4 < decpt <= 15, else d.ddde+XX.
	e := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde+XX
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	decpt := x + 1
	switch {
	case decpt > 0 && decpt <= 15:
		if decpt >= len(digits) {
			return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		}
		return sign + digits[:decpt] + "." + digits[decpt:]
	case decpt <= 0 && decpt > -4:
		return sign + "0." + strings.Repeat("0", -decpt) + digits
	}
	frac := digits[1:]
	if frac == "" {
		frac = "0"
	}
	return fmt.Sprintf("%s%s.%se%+03d", sign, digits[:1], frac, decpt-1)
}

// rubyInspectString is String#inspect of a UTF-8 string.
func rubyInspectString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case '\f':
			b.WriteString(`\f`)
		case '\v':
			b.WriteString(`\v`)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		case 0x1b:
			b.WriteString(`\e`)
		case '#':
			if n := s[i+1:]; n != "" && strings.ContainsRune("{$@", rune(n[0])) {
				b.WriteByte('\\')
			}
			b.WriteByte('#')
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// DelayedStatusDigest is the digest DelayedStatusKey is keyed by: the
// SHA-1 of the JSON array [queue, class, args], args decoded and encoded
// again so that what a Ruby scheduler writes back (its JSON drops
// whitespace and \u escapes) digests alike. A float it reformats (1e3 ->
// 1000.0) digests differently, and such a job's token is not found.
func DelayedStatusDigest(q, class string, args json.RawMessage) string {
	var v interface{}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		v = string(args)
	}
	b, _ := marshal([]interface{}{q, class, v})
	return sha1Hex(b)
}

// DelayedStatusValue is a delayed-status index entry's value: the Unix
// time the item is due, ":", the item as stored in delayed:<ts>.
func DelayedStatusValue(ts int64, item []byte) string {
	return strconv.FormatInt(ts, 10) + ":" + string(item)
}

// retryCountKey is job j's resque-retry counter key.
func (c *Client) retryCountKey(j *Job) (string, error) {
	id, err := RetryIdentifier(j.Args)
	if err != nil {
		return "", err
	}
	return RetryAttemptKey(c.ns, j.Class, id), nil
}

// claimScript gives the worker holding a job (worker:<id> with SHA-1
// ARGV[1]) the status token of the tracked delayed job it is, when a Ruby
// scheduler moved it without its "id". KEYS[1] worker:<id>, KEYS[2] the
// delayed-status hash, then per candidate delayed:<ts> and the token's
// status key. ARGV[2] the time, then per candidate the token, the entry's
// value as read, and the item. A candidate is taken only if its entry is
// unchanged, its status is still waiting (otherwise the entry is stale:
// the job ran with its id, or its status is gone, and it is dropped) and
// its item is no longer in delayed:<ts> (moved, not merely due). The
// entry is removed and the status turns running, as the reserve script
// does for a job with an id. Returns the token, or false.
var claimScript = redis.NewScript(-1, status.UpdateLua+`
local cur = redis.call('GET', KEYS[1])
if not cur or redis.sha1hex(cur) ~= ARGV[1] then return false end
for i = 0, (#KEYS - 2) / 2 - 1 do
  local dk, sk = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  local tok, val, item = ARGV[3 + 3 * i], ARGV[4 + 3 * i], ARGV[5 + 3 * i]
  if redis.call('HGET', KEYS[2], tok) == val then
    local st = redis.call('GET', sk)
    local ok, s = pcall(cjson.decode, st or '')
    if not (ok and type(s) == 'table' and s['status'] == 1) then
      redis.call('HDEL', KEYS[2], tok)
    else
      local ok2, pos = pcall(redis.call, 'LPOS', dk, item)
      if not (ok2 and pos) then
        redis.call('HDEL', KEYS[2], tok)
        resqued_status(sk, 2, ARGV[2], 0)
        return tok
      end
    end
  end
end
return false
`)

// maxClaimCandidates bounds the index entries one claim looks at.
const maxClaimCandidates = 16

// RestoreOptions say what Restore looks for.
type RestoreOptions struct {
	// Attempt asks for the attempt from resque-retry's counter, for a
	// job whose payload has no "attempt" and whose class is retried.
	Attempt bool
	// NoStatus skips the status token look-up: no tracked delayed job
	// is about (Reserved.DelayedStatus is false).
	NoStatus bool
}

// Restore gives reserved job r, in place, what a Ruby resque-scheduler
// dropped when it moved it (see DelayedStatusKey and RetryAttemptKey):
// an r without an ID gets the token of the tracked delayed job it is,
// whose status turns running; with opt.Attempt, r.Attempt comes from
// resque-retry's counter, and r.RetryCounted says the counter exists. A
// job that was never delayed costs one round trip, and the worker asks
// only while tracked delayed jobs are about.
//
// Identical delayed jobs (same queue, class and args) cannot be told
// apart once Ruby moved them: each takes the token of the earliest due
// one still waiting, so every token is used once, but not necessarily by
// the very item that carried it.
func (c *Client) Restore(ctx context.Context, r *Reserved, opt RestoreOptions) error {
	j := &r.Job
	wantID := j.ID == "" && !opt.NoStatus
	if !wantID && !opt.Attempt {
		return nil
	}
	idxKey := DelayedStatusKey(c.ns, DelayedStatusDigest(j.Queue, j.Class, j.Args))
	var countKey string
	if opt.Attempt {
		var err error
		if countKey, err = c.retryCountKey(j); err != nil {
			return fmt.Errorf("restore job %s: %w", j.Class, err)
		}
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("restore job %s: %w", j.Class, err)
	}
	defer conn.Close()
	if wantID {
		_ = conn.Send("HGETALL", idxKey)
	}
	if opt.Attempt {
		_ = conn.Send("GET", countKey)
	}
	replies, err := redis.Values(conn.Do(""))
	if err != nil {
		return fmt.Errorf("restore job %s: %w", j.Class, err)
	}
	if opt.Attempt {
		if n, err := redis.Int(replies[len(replies)-1], nil); err == nil {
			// resque-retry's before_perform_retry INCRs the counter
			// from -1, so during attempt N it holds N-1; the failed
			// attempt left it there, and this is attempt N+1.
			j.Attempt, j.RetryCounted = max(n+2, 1), true
		} else if !errors.Is(err, redis.ErrNil) {
			return fmt.Errorf("restore job %s: read %s: %w", j.Class, countKey, err)
		}
	}
	if !wantID {
		return nil
	}
	entries, err := redis.StringMap(replies[0], nil)
	if err != nil || len(entries) == 0 {
		return nil
	}
	type cand struct {
		tok, val, item string
		ts             int64
	}
	var cands []cand
	for tok, val := range entries {
		t, item, ok := strings.Cut(val, ":")
		ts, err := strconv.ParseInt(t, 10, 64)
		if ok && err == nil {
			cands = append(cands, cand{tok, val, item, ts})
		}
	}
	sort.Slice(cands, func(a, b int) bool {
		if cands[a].ts != cands[b].ts {
			return cands[a].ts < cands[b].ts
		}
		return cands[a].tok < cands[b].tok
	})
	cands = cands[:min(len(cands), maxClaimCandidates)]
	keys := []interface{}{WorkerKey(c.ns, r.Worker), idxKey}
	args := []interface{}{r.Record, time.Now().Unix()}
	for _, cd := range cands {
		keys = append(keys, DelayedKey(c.ns, cd.ts), status.Key(c.ns, cd.tok))
		args = append(args, cd.tok, cd.val, cd.item)
	}
	tok, err := redis.String(claimScript.Do(conn, append(append([]interface{}{len(keys)}, keys...), args...)...))
	if errors.Is(err, redis.ErrNil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore job %s: claim status token: %w", j.Class, err)
	}
	j.ID = tok
	return nil
}

// ForgetAttempts deletes job j's resque-retry counter, as resque-retry's
// clean_retry_key does once a job succeeded or failed for good.
func (c *Client) ForgetAttempts(ctx context.Context, j *Job) error {
	key, err := c.retryCountKey(j)
	if err != nil {
		return fmt.Errorf("forget attempts of %s: %w", j.Class, err)
	}
	if _, err := c.do(ctx, "DEL", key); err != nil {
		return fmt.Errorf("forget attempts of %s: %w", j.Class, err)
	}
	return nil
}

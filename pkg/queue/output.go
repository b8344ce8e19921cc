package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/gomodule/redigo/redis"
)

// ErrNoOutput is Output's error for a job with no kept output: none was
// printed, --keep-output was off, or it expired or was trimmed.
var ErrNoOutput = errors.New("no output kept")

// Output is what one run of a job printed, as --keep-output keeps it in
// OutputKey. Nothing of Resque's reads it.
type Output struct {
	// ID is the job's output id (OutputID).
	ID     string    `json:"id"`
	Class  string    `json:"class"`
	Queue  string    `json:"queue"`
	Worker string    `json:"worker"`
	At     time.Time `json:"at"`
	// Attempt is which run printed it (1 for the first).
	Attempt int `json:"attempt,omitempty"`
	// Outcome is "ok", "retried", or the failure's exception
	// (Resqued::HandlerFailed ...); Error is the failure's error.
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Stdout and Stderr are the last lines of each stream, oldest
	// first, bounded by the runner's tails (64 KiB each).
	Stdout []string `json:"stdout,omitempty"`
	Stderr []string `json:"stderr,omitempty"`
}

// OutputOptions bound what KeepOutput keeps.
type OutputOptions struct {
	// TTL is each output's expiry; required.
	TTL time.Duration
	// MaxJobs is how many outputs are kept at most; the oldest beyond
	// it are deleted. Zero means DefaultOutputMaxJobs.
	MaxJobs int
}

// DefaultOutputMaxJobs is OutputOptions.MaxJobs's default.
const DefaultOutputMaxJobs = 10000

// OutputID is the id under which a job's output is kept: the payload's
// "id" when it has a string one (resqued enqueue, php-resque), else the
// SHA-1 of the payload without insignificant whitespace, 40 hex digits
// (Ruby Resque payloads have no id). A failure record's payload is the job's, so its output is
// found from it.
func OutputID(payload []byte) string {
	var p struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(payload, &p) == nil && len(p.ID) > 0 {
		var id string
		if json.Unmarshal(p.ID, &id) == nil && ValidateOutputID(id) == nil {
			return id
		}
	}
	// A failure record may hold the payload with its whitespace
	// removed: hash it without.
	var b bytes.Buffer
	if json.Compact(&b, payload) == nil {
		payload = b.Bytes()
	}
	return sha1Hex(payload)
}

// ValidateOutputID says what is wrong with an output id a user gave: it
// must be 1 to 256 characters, without spaces or control characters.
func ValidateOutputID(id string) error {
	switch {
	case id == "":
		return errors.New("job id is empty")
	case len(id) > 256:
		return fmt.Errorf("job id is %d characters long, over 256", len(id))
	case strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("job id %q has a space or control character", id)
	}
	return nil
}

// keepOutputScript stores output ARGV[1] in KEYS[1] for ARGV[2] ms and
// indexes its id ARGV[3] in KEYS[2] at time ARGV[4] (ms), dropping index
// entries written before ARGV[5] (ms), whose keys have expired. Returns
// the index's size.
var keepOutputScript = redis.NewScript(2, `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('ZCARD', KEYS[2])
`)

// trimOutputScript deletes the outputs KEYS[2..] whose ids ARGV[1..] are
// the oldest in index KEYS[1], only while they still are in the index.
var trimOutputScript = redis.NewScript(-1, `
local n = 0
for i, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    n = n + redis.call('DEL', KEYS[i + 1])
  end
end
return n
`)

// KeepOutput stores o under OutputKey(o.ID) with opt.TTL, replacing an
// earlier run's, and then deletes the oldest outputs beyond opt.MaxJobs
// (a second step, whose keys are declared: at most MaxJobs plus the
// writers racing it are kept at any time).
func (c *Client) KeepOutput(ctx context.Context, o Output, opt OutputOptions) error {
	if err := ValidateOutputID(o.ID); err != nil {
		return fmt.Errorf("keep output: %w", err)
	}
	if opt.TTL <= 0 {
		return errors.New("keep output: no expiry given")
	}
	max := opt.MaxJobs
	if max <= 0 {
		max = DefaultOutputMaxJobs
	}
	b, err := marshal(o)
	if err != nil {
		return fmt.Errorf("keep output of job %s: %w", o.ID, err)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("keep output of job %s: %w", o.ID, err)
	}
	defer conn.Close()
	idx := OutputIndexKey(c.ns)
	ttl := max64(opt.TTL.Milliseconds(), 1)
	n, err := redis.Int(keepOutputScript.Do(conn, OutputKey(c.ns, o.ID), idx, b, ttl, o.ID, o.At.UnixMilli(), o.At.UnixMilli()-ttl))
	if err != nil {
		return fmt.Errorf("keep output of job %s: %w", o.ID, err)
	}
	if n <= max {
		return nil
	}
	old, err := redis.Strings(conn.Do("ZRANGE", idx, 0, n-max-1))
	if err != nil {
		return fmt.Errorf("trim kept outputs: %w", err)
	}
	args := make([]interface{}, 0, 1+2*len(old))
	args = append(args, idx)
	for _, id := range old {
		args = append(args, OutputKey(c.ns, id))
	}
	for _, id := range old {
		args = append(args, id)
	}
	if _, err := trimOutputScript.Do(conn, append([]interface{}{1 + len(old)}, args...)...); err != nil {
		return fmt.Errorf("trim kept outputs: %w", err)
	}
	return nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// Output returns the output kept for job id (OutputID), or an error
// matching ErrNoOutput.
func (c *Client) Output(ctx context.Context, id string) (*Output, error) {
	outs, err := c.Outputs(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if outs[id] == nil {
		return nil, fmt.Errorf("output of job %s: %w", id, ErrNoOutput)
	}
	return outs[id], nil
}

// Outputs returns the kept outputs of ids, in one round trip, by id;
// ids with none are missing from the map.
func (c *Client) Outputs(ctx context.Context, ids []string) (map[string]*Output, error) {
	outs := map[string]*Output{}
	if len(ids) == 0 {
		return outs, nil
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("read kept output: %w", err)
	}
	defer conn.Close()
	for _, id := range ids {
		_ = conn.Send("GET", OutputKey(c.ns, id))
	}
	replies, err := redis.Values(conn.Do(""))
	if err != nil {
		return nil, fmt.Errorf("read kept output: %w", err)
	}
	for i, r := range replies {
		b, err := redis.Bytes(r, nil)
		if errors.Is(err, redis.ErrNil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read output of job %s: %w", ids[i], err)
		}
		var o Output
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("read output of job %s: %s holds no output: %w", ids[i], OutputKey(c.ns, ids[i]), err)
		}
		outs[ids[i]] = &o
	}
	return outs, nil
}

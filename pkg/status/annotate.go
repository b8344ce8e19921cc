package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gomodule/redigo/redis"
)

// Detail is what resqued adds to a php-resque status value, next to
// php-resque's own fields (which its reader keeps reading): a handler's
// progress and result, and the error of a failed job.
type Detail struct {
	Progress *float64        `json:"progress,omitempty"`
	Message  string          `json:"message,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// Full is a status with resqued's detail.
type Full struct {
	Status
	Detail
}

// GetFull returns job id's status with its detail, or ErrNotTracked.
func (t *Tracker) GetFull(ctx context.Context, id string) (Full, error) {
	conn, err := t.pool.GetContext(ctx)
	if err != nil {
		return Full{}, fmt.Errorf("get status %s: %w", id, err)
	}
	defer conn.Close()
	b, err := redis.Bytes(conn.Do("GET", Key(t.ns, id)))
	if errors.Is(err, redis.ErrNil) {
		return Full{}, fmt.Errorf("get status %s: %w", id, ErrNotTracked)
	}
	if err != nil {
		return Full{}, fmt.Errorf("get status %s: %w", id, err)
	}
	var f Full
	if err := json.Unmarshal(b, &f.Status); err != nil {
		return Full{}, fmt.Errorf("get status %s: decode %q: %w", id, b, err)
	}
	_ = json.Unmarshal(b, &f.Detail) // detail is best effort: php-resque's "result" may be anything
	return f, nil
}

// annotateScript merges ARGV[1] (an encoded Detail) into the status
// KEYS[1] with resqued_merge, the merge the outcome scripts use, keeping
// the key's expiry. Returns 0 when the job is not tracked, -1 when its
// value is not a JSON object, 1 when it merged.
var annotateScript = redis.NewScript(1, mergeLua+`
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if not resqued_members(cur) then return -1 end
redis.call('SET', KEYS[1], resqued_merge(cur, ARGV[1]), 'KEEPTTL')
return 1
`)

// Annotate merges d into job id's status value, only if the job is
// tracked, keeping every other field and the key's expiry, in one atomic
// step. It reports whether the job was tracked.
func (t *Tracker) Annotate(ctx context.Context, id string, d Detail) (bool, error) {
	if id == "" {
		return false, nil
	}
	add, err := json.Marshal(d)
	if err != nil {
		return false, fmt.Errorf("annotate status %s: %w", id, err)
	}
	conn, err := t.pool.GetContext(ctx)
	if err != nil {
		return false, fmt.Errorf("annotate status %s: %w", id, err)
	}
	defer conn.Close()
	n, err := redis.Int(annotateScript.Do(conn, Key(t.ns, id), add))
	switch {
	case err != nil:
		return false, fmt.Errorf("annotate status %s: %w", id, err)
	case n < 0:
		return false, fmt.Errorf("annotate status %s: its value is not a JSON object", id)
	}
	return n == 1, nil
}

package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

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

// Annotate merges d into job id's status value, only if the job is
// tracked, keeping every other field and the key's expiry. It reports
// whether the job was tracked. It is a check-and-set (WATCH), retried if
// the status changed meanwhile.
func (t *Tracker) Annotate(ctx context.Context, id string, d Detail) (bool, error) {
	if id == "" {
		return false, nil
	}
	conn, err := t.pool.GetContext(ctx)
	if err != nil {
		return false, fmt.Errorf("annotate status %s: %w", id, err)
	}
	defer conn.Close()
	key := Key(t.ns, id)
	add, err := json.Marshal(d)
	if err != nil {
		return false, fmt.Errorf("annotate status %s: %w", id, err)
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(add, &fields)
	for attempt := 0; attempt < 10; attempt++ {
		if _, err := conn.Do("WATCH", key); err != nil {
			return false, fmt.Errorf("annotate status %s: %w", id, err)
		}
		cur, err := redis.Bytes(conn.Do("GET", key))
		if errors.Is(err, redis.ErrNil) {
			_, _ = conn.Do("UNWATCH")
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("annotate status %s: %w", id, err)
		}
		next, err := merge(cur, fields)
		if err != nil {
			_, _ = conn.Do("UNWATCH")
			return false, fmt.Errorf("annotate status %s: %w", id, err)
		}
		_ = conn.Send("MULTI")
		_ = conn.Send("SET", key, next, "KEEPTTL")
		reply, err := conn.Do("EXEC")
		if err != nil {
			return false, fmt.Errorf("annotate status %s: %w", id, err)
		}
		if reply != nil {
			return true, nil
		}
	}
	return false, fmt.Errorf("annotate status %s: kept changing", id)
}

// merge sets fields in the JSON object cur, keeping php-resque's fields
// first in their usual order and the rest sorted.
func merge(cur []byte, fields map[string]json.RawMessage) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(cur, &m); err != nil || m == nil {
		return nil, fmt.Errorf("status value %q is not a JSON object", cur)
	}
	for k, v := range fields {
		m[k] = v
	}
	order := []string{"status", "updated", "started"}
	var rest []string
	for k := range m {
		if k != "status" && k != "updated" && k != "started" {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for _, k := range append(order, rest...) {
		v, ok := m[k]
		if !ok {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

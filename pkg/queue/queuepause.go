package queue

// Pausing one queue, in resque-pause's layout: QueuePauseKey exists while
// the queue is paused (ResquePauseHelper.pause writes "true", unpause
// deletes it, paused? asks only whether it exists; see resque-pause's
// lib/resque_pause_helper.rb). The reserve step reads the pause key of
// every queue it looks at in the same script that takes the job, so a
// pause holds from the moment PauseQueue returns, on every worker; a job
// already taken runs to its end.

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/gomodule/redigo/redis"
)

// queuePauseLua defines resqued_queue_paused, the reserve step's look at
// a queue's pause key: KEYS[i] is a queue and KEYS[i+1] its pause key
// (appendQueueKeys). It reports whether the queue is paused; a paused
// queue that holds jobs is added to skipped, when given, so that Wait
// does not wake for jobs nobody may take. Each pause key is read once
// per script call (no script writes one): the look past the job taken
// (resqued_next_id) asks again of the queues the take looked at.
const queuePauseLua = `
local resqued_paused = {}
local function resqued_queue_paused(i, skipped)
  local paused = resqued_paused[i]
  if paused == nil then
    paused = redis.call('EXISTS', KEYS[i + 1]) == 1
    resqued_paused[i] = paused
  end
  if not paused then return false end
  if skipped and redis.call('EXISTS', KEYS[i]) == 1 then table.insert(skipped, KEYS[i]) end
  return true
end
`

// appendQueueKeys appends the reserve step's queue keys to dst: each
// queue's key followed by its pause key, in priority order. The keys are
// built once per queue and kept (as the interface values the script
// call takes), so a reserve allocates nothing for them.
func (f *Fetcher) appendQueueKeys(dst []interface{}, queues []string) []interface{} {
	if f.queueKeys == nil || len(f.queueKeys) > maxCachedQueueKeys {
		f.queueKeys = map[string][2]interface{}{}
	}
	for _, q := range queues {
		k, ok := f.queueKeys[q]
		if !ok {
			k = [2]interface{}{QueueKey(f.c.ns, q), QueuePauseKey(f.c.ns, q)}
			f.queueKeys[q] = k
		}
		dst = append(dst, k[0], k[1])
	}
	return dst
}

// maxCachedQueueKeys bounds a Fetcher's kept queue keys: past it (queue
// names that keep changing, under "*") they are built afresh.
const maxCachedQueueKeys = 1024

// QueuePauseChange is what PauseQueue or ResumeQueue found and did.
type QueuePauseChange struct {
	// Queue is the queue paused or resumed.
	Queue string `json:"queue"`
	// Paused is whether the queue is paused now.
	Paused bool `json:"paused"`
	// Changed is false when the queue already was in that state.
	Changed bool `json:"changed"`
	// Known is whether the queue is in the queues set (a job was ever
	// pushed to it). A queue may be paused before it exists.
	Known bool `json:"known"`
}

// setQueuePauseScript pauses (ARGV[1] "1") or resumes a queue. KEYS[1]
// is its pause key, KEYS[2] the queues set; ARGV[2] the queue's name.
// The pause value is resque-pause's, "true". Returns {1 if the key
// existed before, 1 if the queue is in the queues set}.
var setQueuePauseScript = redis.NewScript(2, `
local was = redis.call('EXISTS', KEYS[1])
if ARGV[1] == '1' then redis.call('SET', KEYS[1], 'true') else redis.call('DEL', KEYS[1]) end
return {was, redis.call('SISMEMBER', KEYS[2], ARGV[2])}
`)

// PauseQueue pauses queue q for every worker sharing this Redis, resqued
// or Ruby resque-pause: once it returns, no worker takes a job from q
// until ResumeQueue (jobs already running finish). q need not exist yet.
func (c *Client) PauseQueue(ctx context.Context, q string) (QueuePauseChange, error) {
	return c.setQueuePause(ctx, q, true)
}

// ResumeQueue lifts the pause of queue q: workers take its jobs again,
// within a second at most for those waiting idle.
func (c *Client) ResumeQueue(ctx context.Context, q string) (QueuePauseChange, error) {
	return c.setQueuePause(ctx, q, false)
}

func (c *Client) setQueuePause(ctx context.Context, q string, pause bool) (QueuePauseChange, error) {
	verb, set := "resume", "0"
	if pause {
		verb, set = "pause", "1"
	}
	if err := ValidateQueueName(q); err != nil {
		return QueuePauseChange{}, fmt.Errorf("%s queue: %w", verb, err)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return QueuePauseChange{}, fmt.Errorf("%s queue %s: %w", verb, q, err)
	}
	defer conn.Close()
	v, err := redis.Ints(setQueuePauseScript.Do(conn, QueuePauseKey(c.ns, q), QueuesKey(c.ns), set, q))
	if err == nil && len(v) != 2 {
		err = fmt.Errorf("unexpected reply %v", v)
	}
	if err != nil {
		return QueuePauseChange{}, fmt.Errorf("%s queue %s: %w", verb, q, err)
	}
	c.reportReplicated(conn, verb+" queue", q)
	return QueuePauseChange{Queue: q, Paused: pause, Changed: (v[0] == 1) != pause, Known: v[1] == 1}, nil
}

// QueuePaused reports whether queue q is paused.
func (c *Client) QueuePaused(ctx context.Context, q string) (bool, error) {
	n, err := redis.Int(c.do(ctx, "EXISTS", QueuePauseKey(c.ns, q)))
	if err != nil {
		return false, fmt.Errorf("read pause of queue %s: %w", q, err)
	}
	return n == 1, nil
}

// PausedQueues returns every paused queue, sorted, whether it is in the
// queues set or not. It SCANs the keyspace for pause keys, so it is for
// operators (`resqued queue list`), not for paths that run often; those
// read the pause of the queues they know (QueueSizes).
func (c *Client) PausedQueues(ctx context.Context) ([]string, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list paused queues: %w", err)
	}
	defer conn.Close()
	prefix := QueuePausePrefix(c.ns)
	seen := map[string]bool{}
	if err := scanPrefix(ctx, conn, prefix, func(k string) { seen[strings.TrimPrefix(k, prefix)] = true }); err != nil {
		return nil, fmt.Errorf("list paused queues: %w", err)
	}
	out := make([]string, 0, len(seen))
	for q := range seen {
		out = append(out, q)
	}
	sort.Strings(out)
	return out, nil
}

// scanPrefix calls each for every key that starts with prefix, as SCAN
// finds them (a key may come twice), until the cursor comes back to 0 or
// ctx ends. A SCAN of the keyspace: for operators' reads, never a job's.
func scanPrefix(ctx context.Context, conn redis.Conn, prefix string, each func(key string)) error {
	match := globEscape(prefix) + "*"
	for cursor := "0"; ; {
		v, err := redis.Values(conn.Do("SCAN", cursor, "MATCH", match, "COUNT", 1000))
		if err == nil && len(v) != 2 {
			err = fmt.Errorf("unexpected reply")
		}
		if err != nil {
			return err
		}
		cursor, _ = redis.String(v[0], nil)
		keys, _ := redis.Strings(v[1], nil)
		for _, k := range keys {
			each(k)
		}
		if cursor == "0" {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// globEscape quotes the characters SCAN's MATCH pattern treats as glob
// syntax, so that s matches only itself.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

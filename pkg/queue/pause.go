package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// PausedMarker is what a paused worker writes to worker:<id>, so that
// resque-web and `resqued workers` show it as paused rather than idle.
// Its payload class is "(paused)" and it carries "paused":true; pruning
// never mistakes it for a job.
func PausedMarker(queues string, since time.Time) []byte {
	b, _ := marshal(struct {
		Queue   string          `json:"queue"`
		RunAt   string          `json:"run_at"`
		Payload json.RawMessage `json:"payload"`
		Paused  bool            `json:"paused"`
	}{queues, since.UTC().Format(RunAtFormat), json.RawMessage(`{"class":"(paused)","args":[]}`), true})
	return b
}

// setPausedScript writes (ARGV[1] "1") or clears the paused marker ARGV[2]
// in worker:<id>, only while that key holds nothing or a paused marker:
// it never replaces a job. Returns 0 when a job is there.
var setPausedScript = redis.NewScript(1, `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, rec = pcall(cjson.decode, cur)
  if not (ok and type(rec) == 'table' and rec['paused'] == true) then return 0 end
end
if ARGV[1] == '1' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('DEL', KEYS[1]) end
return 1
`)

// SetPaused writes or clears worker id's paused marker. It returns
// ErrHoldsJob, changing nothing, when worker:<id> holds a job (one taken
// by a Reserve whose reply was lost): that job must run first.
func (c *Client) SetPaused(ctx context.Context, id, queues string, paused bool, now time.Time) error {
	set, marker := "0", []byte{}
	if paused {
		set, marker = "1", PausedMarker(queues, now)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("mark %s paused=%v: %w", id, paused, err)
	}
	defer conn.Close()
	n, err := redis.Int(setPausedScript.Do(conn, WorkerKey(c.ns, id), set, marker))
	if err != nil {
		return fmt.Errorf("mark %s paused=%v: %w", id, paused, err)
	}
	if n == 0 {
		return fmt.Errorf("mark %s paused=%v: %w", id, paused, ErrHoldsJob)
	}
	return nil
}

package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/worker"
)

// A worker that died holding a job no worker can run (a payload that is
// not JSON, which the reserve script keeps in worker:<id> as a JSON
// string) left it to be failed as Resque::DirtyExit "Job still being
// processed", though the job had not run at all and never could. It
// fails now as it would have had its worker lived: Resqued::InvalidPayload,
// with the payload's own bytes, and it is not requeued.
func TestPruner_MalformedOrphanFailsAsInvalidPayload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	bad := `{"class":"Log","args":[1]` // no closing brace
	e.srv.Do(t, "RPUSH", queue.QueueKey(e.ns, "q"), bad)
	e.srv.Do(t, "SADD", queue.QueuesKey(e.ns), "q")
	e.deadWorker(t, "testhost:51:q")
	pruned, _, err := e.pruner("requeue").Prune(ctx)
	if err != nil || len(pruned) != 1 {
		t.Fatalf("Prune = %v %v, want testhost:51:q pruned", pruned, err)
	}
	if n, _ := redis.Int(e.srv.Do(t, "LLEN", queue.QueueKey(e.ns, "q")), nil); n != 0 {
		t.Errorf("queue holds %d jobs, want 0: a payload no worker can run is not requeued", n)
	}
	fs := e.failures(t)
	if len(fs) != 1 {
		t.Fatalf("failures %+v, want 1", fs)
	}
	f := fs[0]
	var raw string
	_ = json.Unmarshal(f.Payload, &raw)
	if f.Exception != worker.ExcInvalidPayload || !strings.Contains(f.Error, "not valid JSON") || raw != bad {
		t.Errorf("failure %s %q payload %s; want %s, \"not valid JSON\", the payload's bytes %s", f.Exception, f.Error, f.Payload, worker.ExcInvalidPayload, bad)
	}
}

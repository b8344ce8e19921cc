// Package resquetest seeds a test's redis-server with state written the
// way Ruby Resque writes it, for tests of the tools that read it (the
// operator CLI, the dashboard).
package resquetest

import (
	"testing"
	"time"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// Three workers as a Ruby fleet leaves them: one running a job, one idle,
// one paused by resqued (its marker in worker:<id>).
const (
	BusyWorker   = "vm:4242:high,low"
	IdleWorker   = "vm:4243:*"
	PausedWorker = "vm:4244:low"
	// BusyJob is what a Ruby worker writes to worker:<id> while it runs.
	BusyJob = `{"queue":"high","run_at":"2026-11-27T08:50:02Z","payload":{"class":"Archive","args":[35,"tar"]}}`
)

// SeedWorkers registers the three workers in namespace ns, started at
// 08:50:00 with a heartbeat at 08:51:00 (2026-11-27, UTC).
func SeedWorkers(tb testing.TB, srv *redistest.Server, ns string) {
	tb.Helper()
	for _, id := range []string{BusyWorker, IdleWorker, PausedWorker} {
		srv.Do(tb, "SADD", queue.WorkersKey(ns), id)
		srv.Do(tb, "SET", queue.WorkerStartedKey(ns, id), "2026-11-27 08:50:00 +0000")
		srv.Do(tb, "HSET", queue.HeartbeatKey(ns), id, "2026-11-27T08:51:00+00:00")
	}
	srv.Do(tb, "SET", queue.WorkerKey(ns, BusyWorker), BusyJob)
	srv.Do(tb, "SET", queue.WorkerKey(ns, PausedWorker), queue.PausedMarker("low", time.Date(2026, 11, 27, 8, 55, 0, 0, time.UTC)))
}

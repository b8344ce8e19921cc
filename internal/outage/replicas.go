package outage

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Replicas logs how a process's job writes fare with --min-replicas
// (queue.WithReplicaReport): one Warn when replicas stop acknowledging
// them, Debug for each write after that, one Info when they acknowledge
// again, so that a stopped replica under a flood of jobs is one line,
// not one per job. The zero value is ready to use with Logger set; it is
// safe for concurrent use.
type Replicas struct {
	Logger hclog.Logger

	mu     sync.Mutex
	misses int
	since  time.Time
}

// Report takes one write's outcome: nil when replicas acknowledged it.
func (r *Replicas) Report(err error) {
	r.mu.Lock()
	n, since := r.misses, r.since
	if err == nil {
		r.misses = 0
	} else {
		r.misses++
		if n == 0 {
			r.since = time.Now()
		}
	}
	r.mu.Unlock()
	switch {
	case err == nil && n > 0:
		r.Logger.Info("replicas acknowledge job writes again", "unacknowledged_writes", n, "for", time.Since(since).Round(time.Millisecond))
	case err != nil && n == 0:
		r.Logger.Warn("job writes not acknowledged by enough replicas: jobs go on, but a failover now could lose what was written (the job run again, or its outcome lost); logged once until they acknowledge again", "error", err)
	case err != nil:
		r.Logger.Debug("job write not acknowledged by enough replicas", "error", err, "unacknowledged_writes", n+1)
	}
}

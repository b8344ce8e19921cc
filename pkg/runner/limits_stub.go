// Replaced by limits.go (limits15) at integration.

package runner

import "time"

// Limits are the per-job resource limits. Zero means no limit.
type Limits struct {
	Memory int64
	CPU    time.Duration
	Output int64
	Procs  int
}

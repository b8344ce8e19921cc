// Package snooze is the one context-aware sleep the daemon's loops use.
package snooze

import (
	"context"
	"time"
)

// For sleeps for d, or until ctx is done, whichever comes first. A d of
// zero or less returns at once.
func For(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

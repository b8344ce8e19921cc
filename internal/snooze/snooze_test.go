package snooze_test

import (
	"context"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/snooze"
)

// For returns once its context is done, not only after the duration.
func TestFor_ReturnsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { snooze.For(ctx, time.Hour); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("For(ctx, 1h) did not return after ctx was cancelled")
	}
	snooze.For(context.Background(), 0) // returns at once
	snooze.For(context.Background(), -time.Second)
}

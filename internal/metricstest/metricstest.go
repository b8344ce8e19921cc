// Package metricstest reads values out of a Prometheus text exposition,
// for tests of what /metrics serves.
package metricstest

import (
	"strconv"
	"strings"
	"testing"
)

// Value returns the value of one series, its name and labels as written
// (`resque_queue_latency_seconds{queue="a"}`), in the exposition body. A
// series body lacks, or a value that is not a number, fails the test.
func Value(tb testing.TB, body, series string) float64 {
	tb.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	tb.Fatalf("exposition lacks %s:\n%s", series, body)
	return 0
}

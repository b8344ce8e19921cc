package history_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/resqued/resqued/pkg/history"
)

// BenchmarkRecorder_Job is what history adds to each job in the worker:
// counting it (all, its queue, its class with its duration's bucket)
// and the two state changes around it. Nothing here talks to Redis: the
// flush, every 5 s, is measured by make bench (-only history).
func BenchmarkRecorder_Job(b *testing.B) {
	rec := history.NewRecorder(history.Config{Worker: "host:1:*"})
	classes := make([]string, 20)
	for i := range classes {
		classes[i] = "Class" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec.SetState(history.Busy)
		rec.Job("default", classes[i%len(classes)], i%10 == 0, 30*time.Millisecond)
		rec.SetState(history.Idle)
	}
}

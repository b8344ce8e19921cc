// Package historytest seeds the dashboard's history with a known run:
// a few hundred jobs over simulated minutes, some failing, on two queues
// and three classes, queue samples, and three workers' strips. Tests in
// pkg/history, pkg/web and e2e compare what they read and draw with the
// Expect it returns.
package historytest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/queue"
)

// Queues and classes of the seeded run.
const (
	QueueDefault  = "default"
	QueueCritical = "critical"
	ClassResize   = "Resize"
	ClassMailer   = "Mailer"
	// ClassReport got slow and started failing in the last hour: the
	// class that must stand out.
	ClassReport = "Report"
)

// Counts are one minute's processed and failed jobs.
type Counts struct{ Processed, Failed int64 }

// Expect is what the seeded run recorded.
type Expect struct {
	Now time.Time
	// Minutes are the last hour's minutes, the 60 whole minutes before
	// Now's (and Now's, after Extend), oldest first, with the counts of
	// all jobs, per queue and per class.
	Minutes []time.Time
	All     []Counts
	Queue   map[string][]Counts
	Class   map[string][]Counts
	// Size and Latency are each queue's samples, per minute.
	Size    map[string][]int64
	Latency map[string][]float64 // seconds
	// Strips are each worker's 60 cells over the last 10 minutes, as
	// history.Cell.State spells them.
	Strips map[string][]string
	// Jobs is how many jobs the run recorded in all, the baseline hours
	// included.
	Jobs int
}

// job is one seeded job.
type job struct {
	queue, class string
	failed       bool
	d            time.Duration
}

// lastHour is what minute i (0 the oldest of the last hour) ran.
func lastHour(i int) []job {
	var js []job
	resize := 3
	if i >= 35 && i < 41 { // a burst 25 minutes ago
		resize = 10
	}
	for range resize {
		js = append(js, job{QueueDefault, ClassResize, false, 20 * time.Millisecond})
	}
	js = append(js, job{QueueCritical, ClassMailer, i%10 == 0, 100 * time.Millisecond},
		job{QueueCritical, ClassMailer, false, 120 * time.Millisecond},
		job{QueueDefault, ClassReport, i%3 == 0, 800 * time.Millisecond})
	return js
}

// baselineHour is what each of the baseline hours ran: Report fast and
// never failing.
func baselineHour() []job {
	var js []job
	for k := range 40 {
		js = append(js, job{QueueDefault, ClassResize, false, 20 * time.Millisecond})
		if k < 30 {
			js = append(js, job{QueueCritical, ClassMailer, k == 0, 100 * time.Millisecond},
				job{QueueDefault, ClassReport, false, 200 * time.Millisecond})
		}
	}
	return js
}

// Seed records the run into q's history, as of now, with workers as the
// three workers' ids (fewer is fine; more are ignored).
func Seed(tb testing.TB, q *queue.Client, now time.Time, workers []string) Expect {
	tb.Helper()
	ctx := context.Background()
	clock := now
	rec := history.NewRecorder(history.Config{Queue: q, Now: func() time.Time { return clock }})
	end := now.Truncate(time.Minute)
	x := Expect{Now: now, Queue: map[string][]Counts{}, Class: map[string][]Counts{},
		Size: map[string][]int64{}, Latency: map[string][]float64{}, Strips: map[string][]string{}}
	for _, name := range []string{QueueDefault, QueueCritical} {
		x.Queue[name] = nil
	}
	for _, name := range []string{ClassResize, ClassMailer, ClassReport} {
		x.Class[name] = nil
	}
	// The baseline: five hours, two to six hours ago.
	for h := 2; h <= 6; h++ {
		at := now.Add(-time.Duration(h) * time.Hour)
		for _, j := range baselineHour() {
			rec.JobAt(at, j.queue, j.class, j.failed, j.d)
			x.Jobs++
		}
	}
	var samples []queue.QueueSample
	for i := range 60 {
		// The last hour: the 60 whole minutes before now's.
		samples = x.minute(tb, q, rec, i, end.Add(time.Duration(i-60)*time.Minute))
	}
	if err := rec.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	// The queues exist: each holds what its last sample says.
	for _, s := range samples {
		for i := int64(0); i < max(s.Size, 1); i++ {
			p := `{"class":"` + ClassResize + `","args":[` + strconv.FormatInt(i, 10) + `]}`
			if err := q.Enqueue(ctx, s.Queue, []byte(p), queue.EnqueueOptions{}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	x.seedStrips(tb, q, workers)
	return x
}

// minute records minute i of the run (its jobs, as lastHour(i) says,
// and its queue samples) at minute, appending it to x; it returns the
// samples.
func (x *Expect) minute(tb testing.TB, q *queue.Client, rec *history.Recorder, i int, minute time.Time) []queue.QueueSample {
	tb.Helper()
	ctx := context.Background()
	add := func(c *Counts, failed bool) {
		c.Processed++
		if failed {
			c.Failed++
		}
	}
	x.Minutes = append(x.Minutes, minute)
	x.All = append(x.All, Counts{})
	for name := range x.Queue {
		x.Queue[name] = append(x.Queue[name], Counts{})
	}
	for name := range x.Class {
		x.Class[name] = append(x.Class[name], Counts{})
	}
	n := len(x.Minutes) - 1
	at := minute.Add(30 * time.Second)
	for _, j := range lastHour(i) {
		rec.JobAt(at, j.queue, j.class, j.failed, j.d)
		add(&x.All[n], j.failed)
		add(&x.Queue[j.queue][n], j.failed)
		add(&x.Class[j.class][n], j.failed)
		x.Jobs++
	}
	// Queue samples: default saws up and drains, critical stays small;
	// their heads' age follows.
	sd, sc := int64((i%20)*15), int64(i%4)
	ld, lc := float64(i%20)*6.5, float64(i%4)*0.5
	x.Size[QueueDefault] = append(x.Size[QueueDefault], sd)
	x.Size[QueueCritical] = append(x.Size[QueueCritical], sc)
	x.Latency[QueueDefault] = append(x.Latency[QueueDefault], ld)
	x.Latency[QueueCritical] = append(x.Latency[QueueCritical], lc)
	samples := []queue.QueueSample{{Queue: QueueDefault, Size: sd, Latency: time.Duration(ld * float64(time.Second))},
		{Queue: QueueCritical, Size: sc, Latency: time.Duration(lc * float64(time.Second))}}
	if _, err := q.ClaimHistorySample(ctx, minute); err != nil {
		tb.Fatal(err)
	}
	if err := q.RecordQueueSamples(ctx, minute, samples); err != nil {
		tb.Fatal(err)
	}
	return samples
}

// Extend records one more minute of the run, Now's own, so that a chart
// drawn after the minute turns (a real clock: the browser test) still
// has 60 seeded minutes and its newest one: the seeded run then ends
// with Now's minute.
func (x *Expect) Extend(tb testing.TB, q *queue.Client) {
	tb.Helper()
	rec := history.NewRecorder(history.Config{Queue: q})
	x.minute(tb, q, rec, len(x.Minutes), x.Now.Truncate(time.Minute))
	if err := rec.Flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

// seedStrips records the workers' last 10 minutes: the first busy all
// along (stuck on a long job), the second flapping between busy and idle
// every 10 seconds, the third paused for 4 minutes then idle.
func (x *Expect) seedStrips(tb testing.TB, q *queue.Client, workers []string) {
	tb.Helper()
	end := x.Now.Truncate(time.Minute)
	start := end.Add(-(history.StripMinutes - 1) * time.Minute)
	slot := 10 * time.Second
	cells := int((x.Now.Sub(start) + slot - 1) / slot) // the slots up to now, its own partly
	if cells > history.StripMinutes*6 {
		cells = history.StripMinutes * 6
	}
	for w, id := range workers {
		if w > 2 {
			break
		}
		clock := start
		rec := history.NewRecorder(history.Config{Queue: q, Worker: id, Now: func() time.Time { return clock }})
		want := make([]string, history.StripMinutes*6)
		for c := range cells {
			state, name := history.Idle, "idle"
			switch {
			case w == 0:
				state, name = history.Busy, "busy"
			case w == 1 && c%2 == 0:
				state, name = history.Busy, "busy"
			case w == 2 && c < 24:
				state, name = history.Paused, "paused"
			}
			rec.SetState(state)
			want[c] = name
			clock = start.Add(time.Duration(c+1) * 10 * time.Second)
			if clock.After(x.Now) {
				clock = x.Now
			}
		}
		// The slot now is in is partly recorded, in the state set last.
		if err := rec.Flush(context.Background()); err != nil {
			tb.Fatal(err)
		}
		x.Strips[id] = want
	}
}

// More records n more successful Resize jobs on default, ending a
// minute ago: in the last whole minute, the newest the charts draw.
func More(tb testing.TB, q *queue.Client, n int) {
	tb.Helper()
	rec := history.NewRecorder(history.Config{Queue: q})
	for range n {
		rec.JobAt(time.Now().Add(-time.Minute), QueueDefault, ClassResize, false, 20*time.Millisecond)
	}
	if err := rec.Flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

// Now is a seeded run's now for tests with a fixed clock: not on a
// minute's or a strip slot's boundary.
var Now = time.Date(2026, 12, 1, 14, 37, 47, 500_000_000, time.UTC)

// Sum adds up scope's counts over slots.
func Sum(slots []queue.HistorySlot, scope queue.HistoryScope) (c queue.HistoryCounts) {
	for _, s := range slots {
		if h := s.Counts[scope]; h != nil {
			c.Add(h)
		}
	}
	return c
}

// Total is what slots should hold of one scope.
type Total struct {
	Slots             []queue.HistorySlot
	Scope             queue.HistoryScope
	Processed, Failed int64
}

// CheckTotals reports each total the slots do not hold.
func CheckTotals(tb testing.TB, totals []Total) {
	tb.Helper()
	for _, w := range totals {
		if c := Sum(w.Slots, w.Scope); c.Processed != w.Processed || c.Failed != w.Failed {
			tb.Errorf("%c %q: %d processed, %d failed; want %d, %d", w.Scope.Kind, w.Scope.Name, c.Processed, c.Failed, w.Processed, w.Failed)
		}
	}
}

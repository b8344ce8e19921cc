package history_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/historytest"
	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/metrics"
	"github.com/resqued/resqued/pkg/queue"
)

// seedNow is the seeded run's now (historytest.Now).
var seedNow = historytest.Now

func seeded(t *testing.T) (*redistest.Server, *queue.Client, historytest.Expect) {
	t.Helper()
	srv := redistest.Start(t)
	q := queue.New(srv.Pool(t), redistest.Namespace(t))
	x := historytest.Seed(t, q, seedNow, []string{"host:1:*", "host:2:*", "host:3:*"})
	return srv, q, x
}

// TestRecorder_StoredCounts reads the seeded minutes back as stored and
// compares every minute's counts of all jobs, each queue and each class.
func TestRecorder_StoredCounts(t *testing.T) {
	t.Parallel()
	_, q, x := seeded(t)
	ctx := context.Background()
	mins, err := q.ReadHistory(ctx, queue.Minute, x.Minutes[0], x.Minutes[59])
	if err != nil {
		t.Fatal(err)
	}
	cms, err := q.ReadHistory(ctx, queue.MinuteClasses, x.Minutes[0], x.Minutes[59])
	if err != nil {
		t.Fatal(err)
	}
	if len(mins) != 60 || len(cms) != 60 {
		t.Fatalf("read %d and %d minutes, want 60", len(mins), len(cms))
	}
	get := func(s queue.HistorySlot, sc queue.HistoryScope) historytest.Counts {
		if h := s.Counts[sc]; h != nil {
			return historytest.Counts{Processed: h.Processed, Failed: h.Failed}
		}
		return historytest.Counts{}
	}
	for i := range 60 {
		if got, want := get(mins[i], queue.HistoryScope{Kind: queue.ScopeAll}), x.All[i]; got != want {
			t.Errorf("minute %s: all jobs %+v, want %+v", x.Minutes[i].Format("15:04"), got, want)
		}
		for name, cs := range x.Queue {
			if got := get(mins[i], queue.HistoryScope{Kind: queue.ScopeQueue, Name: name}); got != cs[i] {
				t.Errorf("minute %d queue %s: %+v, want %+v", i, name, got, cs[i])
			}
		}
		for name, cs := range x.Class {
			if got := get(cms[i], queue.HistoryScope{Kind: queue.ScopeClass, Name: name}); got != cs[i] {
				t.Errorf("minute %d class %s: %+v, want %+v", i, name, got, cs[i])
			}
			if _, ok := mins[i].Counts[queue.HistoryScope{Kind: queue.ScopeClass, Name: name}]; ok {
				t.Errorf("minute %d: class %s counted in the minute key, which is kept 25 h", i, name)
			}
		}
		if got, want := mins[i].Size[historytest.QueueDefault], x.Size[historytest.QueueDefault][i]; got != want {
			t.Errorf("minute %d: default's size sample %d, want %d", i, got, want)
		}
	}
	// Every job counted in an hour too: the baseline's five hours and
	// the last hour's two.
	hours, err := q.ReadHistory(ctx, queue.Hour, seedNow.Add(-7*time.Hour), seedNow)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, h := range hours {
		if c := h.Counts[queue.HistoryScope{Kind: queue.ScopeAll}]; c != nil {
			total += c.Processed
		}
	}
	if total != int64(x.Jobs) {
		t.Errorf("hours hold %d jobs, the run recorded %d", total, x.Jobs)
	}
}

// TestRecorder_Expiry checks each key's expiry: minutes a day, class
// minutes two hours, hours eight days, class hours 27 hours, worker
// strips an hour.
func TestRecorder_Expiry(t *testing.T) {
	t.Parallel()
	srv, q, x := seeded(t)
	ns := q.Namespace()
	min, hour := x.Minutes[59].Unix()/60, x.Minutes[59].Unix()/3600
	for key, want := range map[string]time.Duration{
		queue.HistoryMinuteKey(ns, min):             queue.HistoryMinuteTTL,
		queue.HistoryClassMinuteKey(ns, min):        queue.HistoryClassMinuteTTL,
		queue.HistoryHourKey(ns, hour):              queue.HistoryHourTTL,
		queue.HistoryClassHourKey(ns, hour):         queue.HistoryClassHourTTL,
		queue.HistoryWorkerKey(ns, x.Now.Unix()/60): queue.HistoryWorkerTTL,
	} {
		ttl, err := redis.Int64(srv.Do(t, "TTL", key), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Duration(ttl) * time.Second; got <= 0 || got > want || got < want-time.Minute {
			t.Errorf("%s expires in %s, want %s", key, got, want)
		}
	}
}

// TestReader_Throughput compares the overview's series with the seed.
func TestReader_Throughput(t *testing.T) {
	t.Parallel()
	_, q, x := seeded(t)
	r := &history.Reader{Queue: q, Now: func() time.Time { return seedNow }}
	tp, err := r.Throughput(context.Background(), history.LastHour)
	if err != nil {
		t.Fatal(err)
	}
	if len(tp.Processed) != 60 || tp.Step != time.Minute {
		t.Fatalf("%d points every %s, want 60 a minute", len(tp.Processed), tp.Step)
	}
	for i := range 60 {
		if !tp.Processed[i].T.Equal(x.Minutes[i]) {
			t.Fatalf("point %d at %s, want %s", i, tp.Processed[i].T, x.Minutes[i])
		}
		if tp.Processed[i].V != float64(x.All[i].Processed) || tp.Failed[i].V != float64(x.All[i].Failed) {
			t.Errorf("minute %d: %v processed %v failed, want %+v", i, tp.Processed[i].V, tp.Failed[i].V, x.All[i])
		}
	}
	day, err := r.Throughput(context.Background(), history.LastDay)
	if err != nil {
		t.Fatal(err)
	}
	if len(day.Processed) != 96 {
		t.Fatalf("day: %d points, want 96 (15 minutes each)", len(day.Processed))
	}
	// The day: 96 whole quarter hours, the one under way (from 14:30)
	// not drawn; they hold the last hour's jobs before it and the
	// baseline hours' (written into their minutes too).
	var sumDay float64
	for _, p := range day.Processed {
		sumDay += p.V * 15 // jobs per minute over 15 minutes
	}
	quarter := seedNow.Truncate(15 * time.Minute)
	if want := float64(int64(x.Jobs) - sumHourOf(x, quarter)); math.Abs(sumDay-want) > 0.001 {
		t.Errorf("day: %v jobs, want %v", sumDay, want)
	}
	if last := day.Processed[95].T; !last.Equal(quarter.Add(-15 * time.Minute)) {
		t.Errorf("day: last point at %s, want the last whole quarter hour, %s", last, quarter.Add(-15*time.Minute))
	}
	week, err := r.Throughput(context.Background(), history.LastWeek)
	if err != nil {
		t.Fatal(err)
	}
	var sumWeek float64
	for _, p := range week.Processed {
		sumWeek += p.V * 60
	}
	hour := seedNow.Truncate(time.Hour)
	if want := float64(int64(x.Jobs) - sumHourOf(x, hour)); len(week.Processed) != 168 || math.Abs(sumWeek-want) > 0.001 {
		t.Errorf("week: %d points holding %v jobs, want 168 holding %v", len(week.Processed), sumWeek, want)
	}
	if last := week.Processed[167].T; !last.Equal(hour.Add(-time.Hour)) {
		t.Errorf("week: last point at %s, want the last whole hour", last)
	}
}

// TestReader_Classes checks the classes' last hour, their p50 and p95
// against the buckets the seed's durations fall in, and that Report
// (slower and failing since the baseline) stands out while the others
// do not.
func TestReader_Classes(t *testing.T) {
	t.Parallel()
	_, q, x := seeded(t)
	r := &history.Reader{Queue: q, Now: func() time.Time { return seedNow }}
	cs, err := r.Classes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 {
		t.Fatalf("%d classes, want 3: %+v", len(cs), cs)
	}
	for _, c := range cs {
		var want historytest.Counts
		for i, n := range x.Class[c.Class] {
			want.Processed += n.Processed
			want.Failed += n.Failed
			if c.PerMinute[i].V != float64(n.Processed) {
				t.Errorf("%s minute %d: %v jobs, want %d", c.Class, i, c.PerMinute[i].V, n.Processed)
			}
		}
		if c.Processed != want.Processed || c.Failed != want.Failed {
			t.Errorf("%s: %d processed %d failed, want %+v", c.Class, c.Processed, c.Failed, want)
		}
		if c.Jumped != (c.Class == historytest.ClassReport) {
			t.Errorf("%s: jumped %v (%v), p95 %v base %v, fail rate %v base %v", c.Class, c.Jumped, c.Why, c.P95, c.Base.P95, c.FailRate, c.Base.FailRate)
		}
	}
	report := cs[1] // Mailer, Report, Resize
	if report.Class != historytest.ClassReport || len(report.Why) != 2 {
		t.Fatalf("%s: why %q, want p95 and failure rate", report.Class, report.Why)
	}
	// Every Report job took 0.8 s: in the (0.5, 1] bucket, so p95 is
	// interpolated inside it.
	if report.P95 <= 0.5 || report.P95 > 1 || report.Base.P95 <= 0.1 || report.Base.P95 > 0.25 {
		t.Errorf("Report p95 %v (want in (0.5,1]), baseline %v (want in (0.1,0.25])", report.P95, report.Base.P95)
	}
	if math.Abs(report.Mean-0.8) > 0.001 {
		t.Errorf("Report mean %v s, want 0.8", report.Mean)
	}
}

// sumHourOf is the seeded last hour's jobs from from on.
func sumHourOf(x historytest.Expect, from time.Time) (n int64) {
	for i, c := range x.All {
		if !x.Minutes[i].Before(from) {
			n += c.Processed
		}
	}
	return n
}

func TestQuantile(t *testing.T) {
	bounds := metrics.DurationBuckets() // .005 .01 .025 .05 .1 .25 .5 1 ...
	for _, tc := range []struct {
		name    string
		q       float64
		buckets []int64
		want    float64
	}{
		{"Empty", 0.5, nil, math.NaN()},
		{"FirstBucket", 0.5, []int64{10}, 0.0025},
		{"Interpolated", 0.5, []int64{0, 0, 0, 0, 0, 0, 0, 4}, 0.75},
		{"AcrossBuckets", 0.5, []int64{2, 0, 0, 0, 2, 4}, 0.1}, // rank 4: the top of (.05, .1]
		{"AcrossBucketsInside", 0.75, []int64{2, 0, 0, 0, 2, 4}, 0.175},
		{"P95", 0.95, []int64{0, 0, 0, 0, 90, 10}, 0.175},
		{"Inf", 0.99, []int64{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 99}, math.Inf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := history.Quantile(tc.q, tc.buckets, bounds)
			if math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tc.want) > 1e-9) {
				t.Errorf("Quantile(%v, %v) = %v, want %v", tc.q, tc.buckets, got, tc.want)
			}
		})
	}
}

// TestReader_Workers reads the seeded strips back: one busy all along,
// one flapping, one paused then idle, and "" where nothing was recorded
// (the slots after now).
func TestReader_Workers(t *testing.T) {
	t.Parallel()
	_, q, x := seeded(t)
	r := &history.Reader{Queue: q, Now: func() time.Time { return seedNow }}
	ids := []string{"host:1:*", "host:2:*", "host:3:*", "host:4:*"}
	got, err := r.Workers(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		cells := got[id]
		if len(cells) != history.StripMinutes*6 {
			t.Fatalf("%s: %d cells, want %d", id, len(cells), history.StripMinutes*6)
		}
		want := x.Strips[id] // nil for host:4, which recorded nothing
		for i, c := range cells {
			w := ""
			if want != nil {
				w = want[i]
			}
			if c.State != w {
				t.Errorf("%s cell %d (%s): %q, want %q", id, i, c.T.Format("15:04:05"), c.State, w)
			}
		}
	}
}

// TestRecorder_FlushFailureKeepsCounts flushes into a stopped Redis, then
// into a running one: the counts of the failed flush arrive once.
func TestRecorder_FlushFailureKeepsCounts(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	q := queue.New(srv.Pool(t), redistest.Namespace(t))
	rec := history.NewRecorder(history.Config{Queue: q, Now: func() time.Time { return seedNow }})
	rec.JobAt(seedNow, "default", "A", true, time.Second)
	srv.Stop()
	if err := rec.Flush(context.Background()); err == nil {
		t.Fatal("flush into a stopped Redis succeeded")
	}
	srv.Restart()
	rec.JobAt(seedNow, "default", "A", false, time.Second)
	redistest.Eventually(t, 10*time.Second, func() bool { return rec.Flush(context.Background()) == nil }, "flush never succeeded")
	slots, err := q.ReadHistory(context.Background(), queue.Minute, seedNow, seedNow)
	if err != nil {
		t.Fatal(err)
	}
	h := slots[0].Counts[queue.HistoryScope{Kind: queue.ScopeAll}]
	if h == nil || h.Processed != 2 || h.Failed != 1 {
		t.Fatalf("after a failed flush and a good one: %+v, want 2 processed 1 failed", h)
	}
}

// TestSampler_OnePerMinute runs two samplers: one minute holds one
// sample, with the queue's size.
func TestSampler_OnePerMinute(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	q := queue.New(srv.Pool(t), redistest.Namespace(t))
	ctx := context.Background()
	for range 3 {
		if err := q.Enqueue(ctx, "jobs", []byte(`{"class":"A","args":[]}`), queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	now := seedNow
	a := history.NewSampler(history.SamplerConfig{Queue: q, Now: func() time.Time { return now }})
	b := history.NewSampler(history.SamplerConfig{Queue: q, Now: func() time.Time { return now }})
	wa, err := a.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wb, err := b.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !wa || wb {
		t.Fatalf("first sampler wrote %v, second %v; want only the first", wa, wb)
	}
	slots, err := q.ReadHistory(ctx, queue.Minute, now, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := slots[0].Size["jobs"]; got != 3 {
		t.Errorf("size sample %d, want 3", got)
	}
	if _, ok := slots[0].Latency["jobs"]; !ok {
		t.Errorf("no latency sample: %+v", slots[0])
	}
	now = now.Add(time.Minute)
	if wb, err = b.Sample(ctx); err != nil || !wb {
		t.Fatalf("next minute: second sampler wrote %v (%v), want true", wb, err)
	}
}

// TestRecorder_IdleStripOncePerMinute: an idle worker writes its strip
// when its state changes and once a minute, not at every flush; the
// Reader carries a registered worker's last state forward meanwhile, and
// stops after CarryForward.
func TestRecorder_IdleStripOncePerMinute(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	q := queue.New(srv.Pool(t), redistest.Namespace(t))
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 14, 0, 5, 0, time.UTC)
	clock := t0
	const id = "host:1:*"
	rec := history.NewRecorder(history.Config{Queue: q, Worker: id, Now: func() time.Time { return clock }})
	min0, min1 := queue.HistoryWorkerKey(q.Namespace(), t0.Unix()/60), queue.HistoryWorkerKey(q.Namespace(), t0.Unix()/60+1)
	flushAt := func(d time.Duration) {
		t.Helper()
		clock = t0.Add(d)
		if err := rec.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(key string) bool { n, _ := redis.Int(srv.Do(t, "EXISTS", key), nil); return n == 1 }
	flushAt(time.Second)
	flushAt(10 * time.Second)
	if exists(min0) {
		t.Fatal("an idle worker wrote its strip within its first minute")
	}
	flushAt(55 * time.Second) // 14:01:00
	if !exists(min0) {
		t.Fatal("the minute's strip was not written once the minute was over")
	}
	flushAt(60 * time.Second)
	flushAt(65 * time.Second)
	if exists(min1) {
		t.Fatal("an idle worker wrote its strip again within the minute")
	}
	states := func(now time.Time, ids []string, from, to time.Time) (s []string) {
		t.Helper()
		r := &history.Reader{Queue: q, Now: func() time.Time { return now }}
		cells, err := r.Workers(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cells[id] {
			if !c.T.Before(from) && c.T.Before(to) {
				s = append(s, c.State)
			}
		}
		return s
	}
	at := t0.Add(95 * time.Second) // 14:01:40
	for _, st := range states(at, []string{id}, t0.Add(55*time.Second), at) {
		if st != "idle" {
			t.Fatalf("registered worker's 14:01:00-14:01:40: %q, want idle carried forward", states(at, []string{id}, t0.Add(55*time.Second), at))
		}
	}
	if s := states(at, nil, t0.Add(55*time.Second), at); s[0] != "" {
		t.Errorf("an unregistered worker's state was carried forward: %q", s)
	}
	late := t0.Add(175 * time.Second) // 14:03:00
	if s := states(late, []string{id}, t0.Add(115*time.Second), late); s[0] != "" {
		t.Errorf("carried forward past CarryForward: %q", s)
	}
	// A change is written at the next flush.
	clock = t0.Add(96 * time.Second)
	rec.SetState(history.Busy)
	flushAt(100 * time.Second)
	if !exists(min1) {
		t.Fatal("a state change was not written at the next flush")
	}
}

// TestSampler_FailedSampleExpires: a sampler that claims a minute and
// then cannot read the queues (a queue key of the wrong type) leaves the
// minute's key with its expiry, not one that lives forever; and a field
// that is not history's (an empty kind) is skipped, not a panic.
func TestSampler_FailedSampleExpires(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	q := queue.New(srv.Pool(t), redistest.Namespace(t))
	ns := q.Namespace()
	srv.Do(t, "SADD", queue.QueuesKey(ns), "bad")
	srv.Do(t, "SET", queue.QueueKey(ns, "bad"), "not a list")
	s := history.NewSampler(history.SamplerConfig{Queue: q, Now: func() time.Time { return seedNow }})
	if _, err := s.Sample(context.Background()); err == nil {
		t.Fatal("sampling a queue of the wrong type succeeded")
	}
	key := queue.HistoryMinuteKey(ns, seedNow.Unix()/60)
	if ttl, _ := redis.Int(srv.Do(t, "TTL", key), nil); ttl <= 0 {
		t.Fatalf("%s claimed, sample failed: TTL %d, want its expiry", key, ttl)
	}
	srv.Do(t, "HSET", key, ":a:", "1", "p", "2", "p:a:", "x")
	if _, err := q.ReadHistory(context.Background(), queue.Minute, seedNow, seedNow); err != nil {
		t.Fatal(err)
	}
}

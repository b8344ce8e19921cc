package history

import (
	"context"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/resqued/resqued/pkg/metrics"
	"github.com/resqued/resqued/pkg/queue"
)

// Point is one value of a series at T.
type Point struct {
	T time.Time
	V float64
}

// Window is how far back a throughput chart looks.
type Window string

// Windows of the overview's throughput chart.
const (
	LastHour Window = "hour"
	LastDay  Window = "day"
	LastWeek Window = "week"
)

// ParseWindow reads "hour", "day" or "week"; anything else is LastHour.
func ParseWindow(s string) Window {
	switch Window(s) {
	case LastDay, LastWeek:
		return Window(s)
	}
	return LastHour
}

// Reader reads history into series for the dashboard.
type Reader struct {
	Queue *queue.Client
	Now   func() time.Time // nil: time.Now
}

func (r *Reader) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Throughput is the jobs processed and failed per minute over a window.
type Throughput struct {
	Window Window
	// Step is the spacing of the points: a minute over the last hour,
	// 15 minutes over the day, an hour over the week. Each point is the
	// jobs per minute averaged over its step, starting at T. The window
	// ends with the last whole step: the one under way is not drawn
	// until it is over, so that no point is a part of a step (the last
	// seconds' counts are still in the workers, not flushed).
	Step              time.Duration
	Processed, Failed []Point
}

// Throughput reads the processed and failed jobs of all queues over w:
// the last 60 whole minutes, 96 whole quarter hours, or 168 whole
// hours. It reads only the two fields it draws (HMGET), not each
// minute's queues.
func (r *Reader) Throughput(ctx context.Context, w Window) (*Throughput, error) {
	now := r.now()
	res, span, step := queue.Minute, time.Hour, time.Minute
	switch w {
	case LastDay:
		span, step = 24*time.Hour, 15*time.Minute
	case LastWeek:
		res, span, step = queue.Hour, 7*24*time.Hour, time.Hour
	default:
		w = LastHour
	}
	end := now.Truncate(step) // the step under way, not drawn
	start := end.Add(-span)
	read := time.Minute
	if res == queue.Hour {
		read = time.Hour
	}
	slots, err := r.Queue.ReadHistoryScope(ctx, res, start, end.Add(-read), queue.HistoryScope{Kind: queue.ScopeAll})
	if err != nil {
		return nil, err
	}
	n := int(span / step)
	t := &Throughput{Window: w, Step: step, Processed: make([]Point, n), Failed: make([]Point, n)}
	for i := range n {
		at := start.Add(time.Duration(i) * step)
		t.Processed[i], t.Failed[i] = Point{T: at}, Point{T: at}
	}
	for _, s := range slots {
		i := int(s.At.Sub(start) / step)
		if i < 0 || i >= n {
			continue
		}
		if h := s.Counts[queue.HistoryScope{Kind: queue.ScopeAll}]; h != nil {
			t.Processed[i].V += float64(h.Processed)
			t.Failed[i].V += float64(h.Failed)
		}
	}
	minutes := float64(step / time.Minute)
	for i := range n {
		t.Processed[i].V /= minutes
		t.Failed[i].V /= minutes
	}
	return t, nil
}

// QueueHistory is one queue's last hour (the 60 whole minutes before
// the one under way, as Throughput), a point a minute.
type QueueHistory struct {
	Queue string
	// Size and Latency (seconds) are the minute's sample, NaN in a
	// minute no process sampled.
	Size, Latency []Point
	// Processed and Failed are the jobs taken from the queue.
	Processed, Failed []Point
}

// Queues reads the last hour of every queue that has one, and of names
// (with no data where none was recorded), by name.
func (r *Reader) Queues(ctx context.Context, names ...string) (map[string]*QueueHistory, error) {
	now := r.now()
	end := now.Truncate(time.Minute).Add(-time.Minute) // the last whole minute, as Throughput
	start := end.Add(-59 * time.Minute)
	slots, err := r.Queue.ReadHistory(ctx, queue.Minute, start, end)
	if err != nil {
		return nil, err
	}
	out := map[string]*QueueHistory{}
	get := func(q string) *QueueHistory {
		h := out[q]
		if h == nil {
			h = &QueueHistory{Queue: q}
			for _, s := range slots {
				h.Size = append(h.Size, Point{T: s.At, V: math.NaN()})
				h.Latency = append(h.Latency, Point{T: s.At, V: math.NaN()})
				h.Processed = append(h.Processed, Point{T: s.At})
				h.Failed = append(h.Failed, Point{T: s.At})
			}
			out[q] = h
		}
		return h
	}
	for _, q := range names {
		get(q)
	}
	for i, s := range slots {
		for q, n := range s.Size {
			get(q).Size[i].V = float64(n)
		}
		for q, l := range s.Latency {
			get(q).Latency[i].V = l
		}
		for sc, c := range s.Counts {
			if sc.Kind != queue.ScopeQueue {
				continue
			}
			h := get(sc.Name)
			h.Processed[i].V, h.Failed[i].V = float64(c.Processed), float64(c.Failed)
		}
	}
	return out, nil
}

// ClassStats is one class over the last hour (the 60 whole minutes
// before the one under way), beside its baseline: the 24 whole hours
// before the hour the last hour began in.
type ClassStats struct {
	Class             string
	Processed, Failed int64    // the last hour
	PerMinute         []Point  // jobs ended per minute, the last hour
	FailRate          float64  // Failed / Processed, 0 with no jobs
	P50, P95          float64  // seconds; NaN with no jobs
	Mean              float64  // seconds; NaN with no jobs
	Base              Baseline // the 24 hours before
	Jumped            bool     // P95 or FailRate jumped against Base
	Why               []string // what jumped, in words
}

// Baseline is a class's counts over the 24 hours before the last hour.
type Baseline struct {
	Processed, Failed int64
	FailRate          float64
	P95               float64 // NaN with no jobs
}

// MinJobs is how many jobs both the last hour and the baseline need
// before a class's p95 or failure rate is called a jump.
const MinJobs = 20

// Classes reads every class seen in the last hour or its baseline,
// sorted by name. A class stands out (Jumped) when, with MinJobs jobs
// in both periods, its p95 more than doubled and moved up two histogram
// buckets or more (so a class whose durations sit at a bucket's edge,
// 95 ms against 105 ms, does not stand out), or its failure rate more
// than doubled and grew by 10 points or more.
func (r *Reader) Classes(ctx context.Context) ([]ClassStats, error) {
	now := r.now()
	end := now.Truncate(time.Minute).Add(-time.Minute) // the last whole minute
	start := end.Add(-59 * time.Minute)
	mins, err := r.Queue.ReadHistory(ctx, queue.MinuteClasses, start, end)
	if err != nil {
		return nil, err
	}
	baseEnd := start.Truncate(time.Hour).Add(-time.Hour)
	hours, err := r.Queue.ReadHistory(ctx, queue.HourClasses, baseEnd.Add(-23*time.Hour), baseEnd)
	if err != nil {
		return nil, err
	}
	bounds := metrics.DurationBuckets()
	byName := map[string]*ClassStats{}
	get := func(c string) *ClassStats {
		s := byName[c]
		if s == nil {
			s = &ClassStats{Class: c}
			for _, m := range mins {
				s.PerMinute = append(s.PerMinute, Point{T: m.At})
			}
			byName[c] = s
		}
		return s
	}
	var sums = map[string]*queue.HistoryCounts{}
	for i, m := range mins {
		for sc, h := range m.Counts {
			if sc.Kind != queue.ScopeClass {
				continue
			}
			s := get(sc.Name)
			s.PerMinute[i].V = float64(h.Processed)
			if sums[sc.Name] == nil {
				sums[sc.Name] = &queue.HistoryCounts{}
			}
			sums[sc.Name].Add(h)
		}
	}
	base := map[string]*queue.HistoryCounts{}
	for _, h := range hours {
		for sc, c := range h.Counts {
			if sc.Kind != queue.ScopeClass {
				continue
			}
			get(sc.Name)
			if base[sc.Name] == nil {
				base[sc.Name] = &queue.HistoryCounts{}
			}
			base[sc.Name].Add(c)
		}
	}
	out := make([]ClassStats, 0, len(byName))
	for name, s := range byName {
		s.P50, s.P95, s.Mean = math.NaN(), math.NaN(), math.NaN()
		s.Base.P95 = math.NaN()
		if h := sums[name]; h != nil {
			s.Processed, s.Failed = h.Processed, h.Failed
			s.FailRate = rate(h.Failed, h.Processed)
			s.P50, s.P95 = Quantile(0.5, h.Buckets, bounds), Quantile(0.95, h.Buckets, bounds)
			if h.Processed > 0 {
				s.Mean = float64(h.DurationMs) / 1000 / float64(h.Processed)
			}
		}
		if b := base[name]; b != nil {
			s.Base = Baseline{Processed: b.Processed, Failed: b.Failed, FailRate: rate(b.Failed, b.Processed),
				P95: Quantile(0.95, b.Buckets, bounds)}
		}
		s.judge(bounds)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Class < out[j].Class })
	return out, nil
}

// judge sets Jumped and Why.
func (s *ClassStats) judge(bounds []float64) {
	if s.Processed < MinJobs || s.Base.Processed < MinJobs {
		return
	}
	if !math.IsNaN(s.P95) && !math.IsNaN(s.Base.P95) && s.P95 > 2*s.Base.P95 &&
		bucketOf(s.P95, bounds) >= bucketOf(s.Base.P95, bounds)+2 {
		s.Jumped = true
		s.Why = append(s.Why, "p95 "+seconds(s.P95)+", was "+seconds(s.Base.P95))
	}
	if s.FailRate > 2*s.Base.FailRate && s.FailRate-s.Base.FailRate >= 0.10 {
		s.Jumped = true
		s.Why = append(s.Why, "failure rate "+percent(s.FailRate)+", was "+percent(s.Base.FailRate))
	}
}

// bucketOf is the index of the bucket v falls in.
func bucketOf(v float64, bounds []float64) int { return sort.SearchFloat64s(bounds, v) }

func rate(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// Quantile estimates the q-quantile (0..1) of the durations counted in
// buckets (per bucket, bounds then +Inf) the way Prometheus's
// histogram_quantile does: linear within the bucket the rank falls in,
// from 0 for the first. Where the rank falls in +Inf it returns +Inf
// (histogram_quantile returns the last finite bound), so that the page
// can say "over 15 min" rather than "15 min". NaN with no counts.
func Quantile(q float64, buckets []int64, bounds []float64) float64 {
	var total int64
	for _, n := range buckets {
		total += n
	}
	if total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	var cum int64
	for i, n := range buckets {
		if n == 0 {
			continue
		}
		if float64(cum+n) >= rank {
			if i >= len(bounds) {
				return math.Inf(1)
			}
			lower := 0.0
			if i > 0 {
				lower = bounds[i-1]
			}
			return lower + (bounds[i]-lower)*(rank-float64(cum))/float64(n)
		}
		cum += n
	}
	return math.Inf(1)
}

// Cell is one 10-second slot of a worker's strip.
type Cell struct {
	T time.Time
	// State is "busy", "idle", "paused", or "" where the worker
	// recorded nothing (not running, or not yet flushed).
	State string
}

// StripMinutes is how far back a worker's strip goes.
const StripMinutes = 10

// CarryForward is how long Reader.Workers carries a registered worker's
// last recorded state forward to now: a worker whose state did not
// change writes its strip once a minute, so its last minute may not be
// written yet. A worker that died stops being carried after it.
const CarryForward = 75 * time.Second

// Workers reads what each worker did over the last StripMinutes, a
// cell per 10 seconds, oldest first: the workers named in ids (the
// registered ones) and any other that recorded a slot.
func (r *Reader) Workers(ctx context.Context, ids []string) (map[string][]Cell, error) {
	now := r.now()
	end := now.Truncate(time.Minute)
	start := end.Add(-(StripMinutes - 1) * time.Minute)
	slots, err := r.Queue.ReadHistory(ctx, queue.WorkerMinute, start, end)
	if err != nil {
		return nil, err
	}
	out := map[string][]Cell{}
	blank := func() []Cell {
		cells := make([]Cell, 0, len(slots)*slotsPerMinute)
		for _, s := range slots {
			for i := range slotsPerMinute {
				cells = append(cells, Cell{T: s.At.Add(time.Duration(i*slotSeconds) * time.Second)})
			}
		}
		return cells
	}
	for _, id := range ids {
		out[id] = blank()
	}
	for m, s := range slots {
		for id, strip := range s.Workers {
			cells := out[id]
			if cells == nil {
				cells = blank()
				out[id] = cells
			}
			for i := 0; i < len(strip) && i < slotsPerMinute; i++ {
				// A slot still to come is no record, whatever was written.
				if c := &cells[m*slotsPerMinute+i]; !c.T.After(now) {
					c.State = stateName(strip[i])
				}
			}
		}
	}
	// A registered worker writes its strip when its state changes and
	// else once a minute (Recorder.Flush): its last recorded state holds
	// until now, for up to CarryForward.
	for _, id := range ids {
		cells, last := out[id], -1
		for i, c := range cells {
			if c.State != "" {
				last = i
			}
		}
		if last < 0 || now.Sub(cells[last].T) > CarryForward {
			continue
		}
		for i := last + 1; i < len(cells) && !cells[i].T.After(now); i++ {
			cells[i].State = cells[last].State
		}
	}
	return out, nil
}

func stateName(b byte) string {
	switch State(b) {
	case Busy:
		return "busy"
	case Idle:
		return "idle"
	case Paused:
		return "paused"
	}
	return ""
}

// seconds writes a duration in seconds the way the Classes page does:
// "35 ms", "1.2 s".
func seconds(v float64) string {
	if math.IsInf(v, 1) {
		return "over 15 min"
	}
	if v < 1 {
		return strconv.FormatFloat(v*1000, 'f', 0, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " s"
}

// percent writes a rate of 0..1 as "12%".
func percent(v float64) string { return strconv.FormatFloat(v*100, 'f', 0, 64) + "%" }

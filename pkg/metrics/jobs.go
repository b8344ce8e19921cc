package metrics

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Outcomes of a job, the outcome label of resqued_job_duration_seconds.
const (
	OutcomeOK      = "ok"
	OutcomeFailed  = "failed"
	OutcomeRetried = "retried"
)

// durationBuckets are resqued_job_duration_seconds's upper bounds.
var durationBuckets = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}

// DurationBuckets returns resqued_job_duration_seconds's upper bounds,
// which the dashboard's history (pkg/history) counts durations in too,
// so that its p50 and p95 are the ones Prometheus would compute.
func DurationBuckets() []float64 { return append([]float64(nil), durationBuckets[:]...) }

// Jobs is the worker's in-process instrumentation: a duration histogram
// per class and outcome, the number of jobs running, and the jobs
// cancelled or killed by a limit (Failed).
type Jobs struct {
	inFlight atomic.Int64
	failures failureCounts

	mu     sync.Mutex
	series map[jobKey]*histogram
}

type jobKey struct{ class, outcome string }

type histogram struct {
	counts [len(durationBuckets)]uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

// NewJobs returns the job metrics, registered in reg.
func NewJobs(reg *Registry) *Jobs {
	j := &Jobs{series: map[jobKey]*histogram{}}
	reg.Register(j)
	return j
}

// Start records a job of class as started; the returned function records
// its outcome and duration, once (later calls do nothing). A nil *Jobs
// records nothing.
func (j *Jobs) Start(class string) func(outcome string) {
	if j == nil {
		return func(string) {}
	}
	start := time.Now()
	j.inFlight.Add(1)
	done := false
	return func(outcome string) {
		if done {
			return
		}
		done = true
		j.inFlight.Add(-1)
		j.observe(jobKey{class, outcome}, time.Since(start).Seconds())
	}
}

func (j *Jobs) observe(k jobKey, v float64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	h := j.series[k]
	if h == nil {
		h = &histogram{}
		j.series[k] = h
	}
	i := sort.SearchFloat64s(durationBuckets[:], v) // first bound >= v
	if i < len(h.counts) {
		h.counts[i]++
	}
	h.count++
	h.sum += v
}

// durationLE are durationBuckets as the le labels write them.
var durationLE = func() (le [len(durationBuckets)]string) {
	for i, b := range durationBuckets {
		le[i] = string(appendFloat(nil, b))
	}
	return le
}()

// Collect implements Source.
func (j *Jobs) Collect(w *Writer) {
	type series struct {
		k jobKey
		h histogram
	}
	j.mu.Lock()
	all := make([]series, 0, len(j.series))
	for k, h := range j.series {
		all = append(all, series{k, *h})
	}
	j.mu.Unlock()
	sort.Slice(all, func(a, b int) bool {
		if all[a].k.class != all[b].k.class {
			return all[a].k.class < all[b].k.class
		}
		return all[a].k.outcome < all[b].k.outcome
	})
	if len(all) > 0 {
		const name = "resqued_job_duration_seconds"
		w.Family(name, "Time from taking a job to its outcome, by class and outcome (ok, failed, retried).", "histogram")
		for _, s := range all {
			k, h := s.k, s.h
			var cum uint64
			for i := range durationBuckets {
				cum += h.counts[i]
				w.Sample(name+"_bucket", float64(cum), "class", k.class, "outcome", k.outcome, "le", durationLE[i])
			}
			w.Sample(name+"_bucket", float64(h.count), "class", k.class, "outcome", k.outcome, "le", "+Inf")
			w.Sample(name+"_sum", h.sum, "class", k.class, "outcome", k.outcome)
			w.Sample(name+"_count", float64(h.count), "class", k.class, "outcome", k.outcome)
		}
	}
	w.Family("resqued_jobs_in_flight", "Jobs this process is running now.", "gauge")
	w.Sample("resqued_jobs_in_flight", float64(j.inFlight.Load()))
	j.failures.write(w)
}

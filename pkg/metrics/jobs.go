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

// Jobs is the worker's in-process instrumentation: a duration histogram
// per class and outcome, and the number of jobs running.
type Jobs struct {
	inFlight atomic.Int64

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

// Collect implements Source.
func (j *Jobs) Collect(w *Writer) {
	j.mu.Lock()
	keys := make([]jobKey, 0, len(j.series))
	hs := make(map[jobKey]histogram, len(j.series))
	for k, h := range j.series {
		keys = append(keys, k)
		hs[k] = *h
	}
	j.mu.Unlock()
	sort.Slice(keys, func(a, b int) bool {
		if keys[a].class != keys[b].class {
			return keys[a].class < keys[b].class
		}
		return keys[a].outcome < keys[b].outcome
	})
	if len(keys) > 0 {
		const name = "resqued_job_duration_seconds"
		w.Family(name, "Time from taking a job to its outcome, by class and outcome (ok, failed, retried).", "histogram")
		var le [24]byte
		for _, k := range keys {
			h := hs[k]
			var cum uint64
			for i, bound := range durationBuckets {
				cum += h.counts[i]
				w.Sample(name+"_bucket", float64(cum), "class", k.class, "outcome", k.outcome, "le", string(appendFloat(le[:0], bound)))
			}
			w.Sample(name+"_bucket", float64(h.count), "class", k.class, "outcome", k.outcome, "le", "+Inf")
			w.Sample(name+"_sum", h.sum, "class", k.class, "outcome", k.outcome)
			w.Sample(name+"_count", float64(h.count), "class", k.class, "outcome", k.outcome)
		}
	}
	w.Family("resqued_jobs_in_flight", "Jobs this process is running now.", "gauge")
	w.Sample("resqued_jobs_in_flight", float64(j.inFlight.Load()))
}

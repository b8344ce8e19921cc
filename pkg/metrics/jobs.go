package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Job outcomes, the values of resqued_job_duration_seconds's outcome label.
const (
	OutcomeOK      = "ok"
	OutcomeFailed  = "failed"
	OutcomeRetried = "retried"
)

// Jobs instruments the jobs this process runs. A nil *Jobs is valid and
// records nothing.
type Jobs struct {
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// NewJobs creates the job metrics and registers them with reg.
func NewJobs(reg prometheus.Registerer) *Jobs {
	j := &Jobs{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resqued_job_duration_seconds",
			Help:    "Time from taking a job to its outcome, by class and outcome (ok, failed, retried).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900},
		}, []string{"class", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resqued_jobs_in_flight",
			Help: "Jobs this process is running now.",
		}),
	}
	reg.MustRegister(j.duration, j.inFlight)
	return j
}

// Start marks a job of class as started and returns the function to call
// once with its outcome (OutcomeOK, OutcomeFailed or OutcomeRetried).
// Calls after the first are ignored.
func (j *Jobs) Start(class string) func(outcome string) {
	if j == nil {
		return func(string) {}
	}
	start := time.Now()
	j.inFlight.Inc()
	done := false
	return func(outcome string) {
		if done {
			return
		}
		done = true
		j.inFlight.Dec()
		j.duration.WithLabelValues(class, outcome).Observe(time.Since(start).Seconds())
	}
}

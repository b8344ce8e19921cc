package metrics

import "sync/atomic"

// The failure exceptions Failed counts, as pkg/worker records them in
// the failed list (it owns the names; it imports this package, not the
// other way round).
const (
	excCancelled    = "Resqued::Cancelled"
	excMemoryLimit  = "Resqued::MemoryLimit"
	excCPULimit     = "Resqued::CPULimit"
	excOutputLimit  = "Resqued::OutputLimit"
	excProcessLimit = "Resqued::ProcessLimit"
	excDuplicateJob = "Resqued::DuplicateJob"
)

// limits are the limit labels of resqued_jobs_limit_kills_total, in the
// order they are written, with the exception that counts in each.
var limits = [...]struct{ label, exception string }{
	{"memory", excMemoryLimit},
	{"cpu", excCPULimit},
	{"output", excOutputLimit},
	{"procs", excProcessLimit},
}

// failureCounts are the counters Failed adds to.
type failureCounts struct {
	cancelled  atomic.Uint64
	duplicates atomic.Uint64
	kills      [len(limits)]atomic.Uint64
}

// Failed counts a job that failed with exception: a cancelled job
// (Resqued::Cancelled) in resqued_jobs_cancelled_total, a job killed for
// going over a limit in resqued_jobs_limit_kills_total{limit}:
// Resqued::MemoryLimit as memory, Resqued::CPULimit as cpu,
// Resqued::OutputLimit as output, Resqued::ProcessLimit as procs; a
// unique job refused because another copy holds its lock
// (Resqued::DuplicateJob) in resqued_unique_duplicates_total. Other
// exceptions count nowhere here. A nil *Jobs counts nothing.
func (j *Jobs) Failed(exception string) {
	if j == nil {
		return
	}
	switch exception {
	case excCancelled:
		j.failures.cancelled.Add(1)
		return
	case excDuplicateJob:
		j.failures.duplicates.Add(1)
		return
	}
	for i, l := range limits {
		if l.exception == exception {
			j.failures.kills[i].Add(1)
			return
		}
	}
}

// write writes the families, every series from 0 on, so that rate()
// sees the first one.
func (f *failureCounts) write(w *Writer) {
	w.Family("resqued_jobs_cancelled_total", "Jobs this process stopped because they were cancelled.", "counter")
	w.Sample("resqued_jobs_cancelled_total", float64(f.cancelled.Load()))
	w.Family("resqued_unique_duplicates_total", "Unique jobs this process did not run because another copy held their lock (Resqued::DuplicateJob).", "counter")
	w.Sample("resqued_unique_duplicates_total", float64(f.duplicates.Load()))
	w.Family("resqued_jobs_limit_kills_total", "Jobs this process killed for going over a limit, by limit (memory, cpu, output, procs).", "counter")
	for i, l := range limits {
		w.Sample("resqued_jobs_limit_kills_total", float64(f.kills[i].Load()), "limit", l.label)
	}
}

package runner

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits bounds what one job's handler may use. A zero field means no
// limit of that kind; the zero Limits means none at all, and costs a job
// nothing. See docs/handlers.md, "Limits".
type Limits struct {
	// Memory is the most memory, in bytes, the handler's process group
	// may hold (the sum of its members' resident memory). Each process
	// is also given it as RLIMIT_DATA, so an allocation past it fails.
	Memory int64
	// CPU is the most CPU time (user and system) the process group may
	// use. Each process is also given it, rounded up to whole seconds, as
	// RLIMIT_CPU.
	CPU time.Duration
	// Output is the most bytes the handler may write to stdout and
	// stderr together. Each process is also given it as RLIMIT_FSIZE, so
	// the files it writes are bounded too.
	Output int64
	// Procs is the most processes the handler's process group may hold
	// at once, the handler included.
	Procs int
}

// IsZero reports whether l sets no limit at all.
func (l Limits) IsZero() bool { return l == Limits{} }

// String lists the limits set, as in "memory 512 MiB, cpu 30s, output
// 100 MiB, procs 8"; it is "no limits" for the zero Limits.
func (l Limits) String() string {
	var parts []string
	if l.Memory > 0 {
		parts = append(parts, "memory "+SizeString(l.Memory))
	}
	if l.CPU > 0 {
		parts = append(parts, "cpu "+l.CPU.String())
	}
	if l.Output > 0 {
		parts = append(parts, "output "+SizeString(l.Output))
	}
	if l.Procs > 0 {
		parts = append(parts, "procs "+strconv.Itoa(l.Procs))
	}
	if len(parts) == 0 {
		return "no limits"
	}
	return strings.Join(parts, ", ")
}

// check refuses negative limits; what names the limits in the error.
func (l Limits) check(what string) error {
	switch {
	case l.Memory < 0:
		return fmt.Errorf("%s: memory limit %d: must not be negative", what, l.Memory)
	case l.CPU < 0:
		return fmt.Errorf("%s: cpu limit %s: must not be negative", what, l.CPU)
	case l.Output < 0:
		return fmt.Errorf("%s: output limit %d: must not be negative", what, l.Output)
	case l.Procs < 0:
		return fmt.Errorf("%s: process limit %d: must not be negative", what, l.Procs)
	}
	return nil
}

// SizeString writes a byte count in binary units, as people write
// them: "512 MiB", "1.5 GiB", "100 KiB", "700 bytes".
func SizeString(n int64) string {
	units := []struct {
		size int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}}
	for _, u := range units {
		if n >= u.size {
			if n%u.size == 0 {
				return fmt.Sprintf("%d %s", n/u.size, u.name)
			}
			return strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64) + " " + u.name
		}
	}
	if n == 1 {
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}

// Names of the limits in ExitError.Limit.
const (
	LimitMemory = "memory"
	LimitCPU    = "cpu"
	LimitOutput = "output"
	LimitProcs  = "procs"
)

// limitHit is a limit that killed a handler: which one, its value and
// what was seen (bytes for memory and output, nanoseconds for cpu, a
// count for procs).
type limitHit struct {
	limit     string
	max, seen int64
}

// limitsFor returns the limits that apply to job: its own, or the
// runner's.
func (r *Runner) limitsFor(job Job) Limits {
	if job.Limits != nil {
		return *job.Limits
	}
	return r.limits
}

// timeoutFor returns the wall clock limit of job: its own, or the
// runner's.
func (r *Runner) timeoutFor(job Job) time.Duration {
	if job.Timeout > 0 {
		return job.Timeout
	}
	return r.timeout
}

// A limitGroup enforces a job's limits from outside its processes: a
// cgroup v2 child of Config.Cgroup, which the handler is born in
// (SysProcAttr.UseCgroupFD). Runner.groups is nil without --cgroup;
// with it, spawn creates one group per job (and skips the RLIMIT_DATA
// fallback and the memory and procs watching), and supervise reads its
// usage once the handler exited, to name the limit that killed it.
// cgroupJob adapts a *jobCgroup.
type limitGroup interface {
	// fd is the cgroup directory's descriptor, for SysProcAttr.CgroupFD.
	fd() int
	// kill kills every process in the group.
	kill() error
	// finish reports what the group used, kills what is left and
	// removes the group.
	finish() (groupUsage, error)
}

// groupUsage is what a limitGroup saw of a job.
type groupUsage struct {
	OOMKilled  bool
	MemoryPeak int64
	PidsMaxHit bool
	CPU        time.Duration
}

// hit names the limit the group saw the handler pass, if any. A
// process refused by pids.max was not killed, but the job failed at it.
func (u groupUsage) hit(l Limits) *limitHit {
	switch {
	case u.OOMKilled:
		return &limitHit{limit: LimitMemory, max: l.Memory, seen: max(u.MemoryPeak, l.Memory)}
	case u.PidsMaxHit && l.Procs > 0:
		return &limitHit{limit: LimitProcs, max: int64(l.Procs), seen: int64(l.Procs) + 1}
	}
	return nil
}

// limitCounter counts the bytes a handler writes to stdout and stderr
// together and calls over, once, when they pass max.
type limitCounter struct {
	max     int64
	n       atomic.Int64
	tripped atomic.Bool
	over    func(written int64)
}

// reader returns f counted by c, or f itself when c is nil.
func (c *limitCounter) reader(f *os.File) io.Reader {
	if c == nil {
		return f
	}
	return &countingReader{f: f, c: c}
}

// reset starts counting afresh (a persistent process's next job).
func (c *limitCounter) reset() {
	if c != nil {
		c.n.Store(0)
	}
}

// countingReader is an output stream counted by a limitCounter.
type countingReader struct {
	f *os.File
	c *limitCounter
}

func (r *countingReader) Read(b []byte) (int, error) {
	n, err := r.f.Read(b)
	if n > 0 {
		if total := r.c.n.Add(int64(n)); total > r.c.max && r.c.tripped.CompareAndSwap(false, true) {
			r.c.over(total)
		}
	}
	return n, err
}

// hitLimit records that limit killed the handler, unless another limit
// or a stop came first, and kills its process group.
func (p *Process) hitLimit(h limitHit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited || p.hit != nil || p.killed {
		return
	}
	p.hit = &h
	p.killed = true
	p.logger.Warn("handler over its limit, killing", "pid", p.pid, "limit", h.limit, "max", h.max, "seen", h.seen)
	p.signalLocked(syscall.SIGKILL)
}

// overLimit reports whether a limit killed the handler.
func (p *Process) overLimit() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hit != nil
}

// limitOf names the limit behind the handler's death when nothing in
// resqued saw it: a signal the kernel sends at an rlimit (SIGXCPU, or
// the SIGKILL at RLIMIT_CPU's hard limit; SIGXFSZ).
func limitOf(l Limits, sig syscall.Signal, cpu time.Duration) *limitHit {
	switch {
	case l.CPU > 0 && (sig == syscall.SIGXCPU || sig == syscall.SIGKILL && cpu >= l.CPU):
		// The kernel's own count reached the limit; rusage's sampled
		// one may fall just short of it.
		return &limitHit{limit: LimitCPU, max: int64(l.CPU), seen: int64(max(cpu, l.CPU))}
	case l.Output > 0 && sig == syscall.SIGXFSZ:
		return &limitHit{limit: LimitOutput, max: l.Output, seen: -1}
	}
	return nil
}

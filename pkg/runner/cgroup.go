package runner

import "time"

// cgroupUsage is what a job's cgroup recorded about the job's processes,
// taken together: the handler and everything it started.
type cgroupUsage struct {
	// OOMKilled is whether the kernel's OOM killer killed a process of the
	// job because the group reached memory.max (memory.events oom_kill).
	OOMKilled bool
	// MemoryPeak is the most memory the group used at once, in bytes
	// (memory.peak; on kernels before 5.19 the highest memory.current
	// seen). Zero when the memory controller is not enabled.
	MemoryPeak int64
	// PidsMaxHit is whether a fork or clone in the group failed because of
	// pids.max (pids.events max).
	PidsMaxHit bool
	// CPU is the CPU time, user plus system, the group's processes used
	// (cpu.stat usage_usec), including those that already exited.
	CPU time.Duration
}

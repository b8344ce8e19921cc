package runner

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// shimEnv carries a job's rlimits from resqued to its own binary, re-run
// as the handler's first process (the rlimit shim): "DATA CPU FSIZE", in
// bytes, seconds and bytes, 0 for none. Go cannot run code between fork
// and exec, so the shim sets the limits on itself and then execs the
// handler, which inherits them. Only jobs with a memory, cpu or output
// limit go through it.
const shimEnv = "RESQUED_RLIMIT_SHIM"

// shimExe is the binary the shim runs from: this one, even if its file
// was replaced or deleted since it started.
const shimExe = "/proc/self/exe"

// In any binary that imports this package (resqued, and test binaries
// alike), a process started as the rlimit shim never runs its main: it
// sets the limits and becomes the handler.
func init() {
	if spec, ok := os.LookupEnv(shimEnv); ok {
		os.Exit(runShim(spec))
	}
}

// runShim sets the rlimits in spec and execs the handler, os.Args[0],
// with the same argv, descriptors and environment (less shimEnv). It
// returns only on failure, with the exit status to end with.
//
// Between the first setrlimit and the exec it allocates nothing and
// makes raw system calls only: this process, a Go program, already maps
// more than a small RLIMIT_DATA allows, so any new mapping of its own
// after the limit is set (the heap growing, a GC) would fail it with
// "fatal error: runtime: out of memory" instead of running the handler.
func runShim(spec string) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "resqued: start handler %s: %s\n", os.Args[0], fmt.Sprintf(format, a...))
		return 127
	}
	f := strings.Fields(spec)
	if len(f) != 3 {
		return fail("bad %s %q", shimEnv, spec)
	}
	var v [3]uint64
	for i, s := range f {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fail("bad %s %q", shimEnv, spec)
		}
		v[i] = n
	}
	type rlimit struct {
		res  int
		name string
		lim  unix.Rlimit
	}
	var limits []rlimit
	for _, l := range []struct {
		res  int
		name string
		soft uint64
		hard uint64
	}{
		{unix.RLIMIT_DATA, "RLIMIT_DATA", v[0], v[0]},
		// SIGXCPU at the soft limit, SIGKILL a second later for a
		// handler that ignores it.
		{unix.RLIMIT_CPU, "RLIMIT_CPU", v[1], v[1] + 1},
		{unix.RLIMIT_FSIZE, "RLIMIT_FSIZE", v[2], v[2]},
	} {
		if l.soft == 0 {
			continue
		}
		var cur unix.Rlimit
		if err := unix.Getrlimit(l.res, &cur); err == nil && cur.Max != unix.RLIM_INFINITY && l.hard > cur.Max {
			// An unprivileged process cannot raise its hard limit: keep
			// the lower one already in force.
			l.hard = cur.Max
			l.soft = min(l.soft, cur.Max)
		}
		limits = append(limits, rlimit{l.res, l.name, unix.Rlimit{Cur: l.soft, Max: l.hard}})
	}
	env := os.Environ()
	for i, kv := range env {
		if strings.HasPrefix(kv, shimEnv+"=") {
			env = append(env[:i], env[i+1:]...)
			break
		}
	}
	argv0, err := syscall.BytePtrFromString(os.Args[0])
	if err != nil {
		return fail("%v", err)
	}
	argv, err := syscall.SlicePtrFromStrings(os.Args)
	if err != nil {
		return fail("%v", err)
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return fail("%v", err)
	}
	// No collection may start (and map memory) from here on.
	debug.SetGCPercent(-1)
	for i := range limits {
		l := &limits[i]
		if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, 0, uintptr(l.res), uintptr(unsafe.Pointer(&l.lim)), 0, 0, 0); e != 0 {
			return fail("set %s: %v", l.name, e)
		}
	}
	// ETXTBSY: the file is still open for writing somewhere (being
	// deployed); spawn's own retry does not see this exec.
	pause := syscall.Timespec{Nsec: int64(time.Millisecond)}
	for tries := 0; ; tries++ {
		_, _, e := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(argv0)),
			uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])))
		if e != syscall.ETXTBSY || tries == 9 {
			// Only the message is left to do: allocating now may fail.
			fmt.Fprintf(os.Stderr, "resqued: %v\n", explainStart("", os.Args[0], e))
			return 127
		}
		_, _, _ = syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&pause)), 0, 0)
		pause.Nsec *= 2
	}
}

// shimmed makes cmd, which would run path, run the rlimit shim for l
// instead (when l needs an rlimit), and reports whether it did.
func shimmed(cmd *exec.Cmd, path string, l Limits) bool {
	if l.Memory <= 0 && l.CPU <= 0 && l.Output <= 0 {
		return false
	}
	cpu := int64(0)
	if l.CPU > 0 {
		cpu = int64((l.CPU + time.Second - 1) / time.Second)
	}
	cmd.Path = shimExe
	cmd.Args = []string{path}
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d %d %d", shimEnv, dataLimit(l.Memory), cpu, max(l.Output, 0)))
	return true
}

// dataLimit is the RLIMIT_DATA of a job with memory limit mem: above
// it, by a quarter (at least 32 MiB), so that a handler growing past
// the limit is seen and killed by the watcher, as over the memory limit,
// rather than refused on the way; the rlimit is the backstop for growth
// faster than the watcher looks, and for a single allocation far past
// the limit. Zero for none.
func dataLimit(mem int64) int64 {
	if mem <= 0 {
		return 0
	}
	return mem + max(mem/4, 32<<20)
}

// handlerMaxRSS is the resident high-water mark of the exited handler
// and the descendants it waited for, in bytes (wait4's rusage), or 0
// when it may be the rlimit shim's: the kernel keeps the peak across
// exec, so it covers the shim, this binary started afresh, too. A peak
// well above what the shim alone reaches is the handler's.
func handlerMaxRSS(state *os.ProcessState) int64 {
	ru, ok := state.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	peak, base := ru.Maxrss<<10, shimPeak()
	if base < 0 || peak <= base+base/4 {
		return 0
	}
	return peak
}

var shimBase struct {
	once sync.Once
	peak int64
}

// shimPeak is the rlimit shim's own resident peak, measured once by
// running it in front of /bin/true; -1 if that could not be measured.
func shimPeak() int64 {
	shimBase.once.Do(func() {
		shimBase.peak = -1
		cmd := exec.Command(shimExe)
		cmd.Args = []string{"/bin/true"}
		cmd.Env = []string{shimEnv + "=0 0 0"}
		if cmd.Run() != nil {
			return
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			shimBase.peak = ru.Maxrss << 10
		}
	})
	return shimBase.peak
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux ABI.
const clockTick = 100

// pageSize is the unit of /proc/<pid>/stat's rss.
var pageSize = int64(os.Getpagesize())

// groupSample is what one look at a process group saw.
type groupSample struct {
	members int
	rss     int64         // bytes
	cpu     time.Duration // user+system of members, and of their reaped children
}

// sampleGroup sums up the processes of process group pgid from /proc.
func sampleGroup(pgid int, buf []byte) (groupSample, []byte) {
	var s groupSample
	d, err := os.Open("/proc")
	if err != nil {
		return s, buf
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	want := strconv.Itoa(pgid)
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		buf, err = readInto(buf, "/proc/"+name+"/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// Fields after the parenthesised command name, from field 3
		// (state): pgrp is field 5, utime..cstime 14..17, rss 24.
		i := bytes.LastIndexByte(buf, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(buf[i+1:])
		if len(f) < 22 || string(f[2]) != want {
			continue
		}
		s.members++
		var ticks int64
		for _, k := range []int{11, 12, 13, 14} {
			n, _ := strconv.ParseInt(string(f[k]), 10, 64)
			ticks += max(n, 0)
		}
		s.cpu += time.Duration(ticks) * time.Second / clockTick
		pages, _ := strconv.ParseInt(string(f[21]), 10, 64)
		s.rss += max(pages, 0) * pageSize
	}
	return s, buf
}

// readInto reads the small file path into buf's storage.
func readInto(buf []byte, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil || n == 0 {
			return buf, nil
		}
	}
}

// watchInterval is how often a job's process group is looked at.
const watchInterval = 100 * time.Millisecond

// watch samples the handler's process group until it exits, and kills
// it at the first limit passed: memory (the sum of resident memory),
// cpu (summed over the group), procs (members). Only started for a job
// with such a limit. viaShim says the handler starts as the rlimit
// shim: until that has become the handler, what the group uses is the
// shim's (this binary's), not the handler's, and is not looked at.
func (p *Process) watch(l Limits, viaShim bool, stop <-chan struct{}) {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	var buf []byte
	self, _ := os.Readlink(shimExe)
	for {
		// The first look is a tick in: most jobs are over by then, and
		// pay nothing for the scan.
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if viaShim {
			if exe, err := os.Readlink("/proc/" + strconv.Itoa(p.pid) + "/exe"); err == nil && exe == self {
				continue // still the shim (a loaded machine)
			}
			viaShim = false
		}
		var s groupSample
		s, buf = sampleGroup(p.pid, buf)
		p.peak.Store(max(p.peak.Load(), s.rss))
		switch {
		case l.Memory > 0 && s.rss > l.Memory:
			p.hitLimit(limitHit{limit: LimitMemory, max: l.Memory, seen: p.peak.Load()})
		case l.CPU > 0 && s.cpu >= l.CPU:
			p.hitLimit(limitHit{limit: LimitCPU, max: int64(l.CPU), seen: int64(s.cpu)})
		case l.Procs > 0 && s.members > l.Procs:
			p.hitLimit(limitHit{limit: LimitProcs, max: int64(l.Procs), seen: int64(s.members)})
		}
	}
}

// bornIn has the child start in the cgroup open at fd (clone3's
// CLONE_INTO_CGROUP), so that none of its processes runs outside it.
func bornIn(attr *syscall.SysProcAttr, fd int) {
	attr.UseCgroupFD, attr.CgroupFD = true, fd
}

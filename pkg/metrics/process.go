package metrics

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Process exports the standard process_* and a few go_* metrics of this
// process, under the names the Prometheus client libraries use, so that
// dashboards built on them keep working. The process_* ones read /proc
// (Linux); elsewhere they are left out.
type Process struct{}

// Collect implements Source.
func (Process) Collect(w *Writer) {
	w.Family("go_goroutines", "Number of goroutines that currently exist.", "gauge")
	w.Sample("go_goroutines", float64(runtime.NumGoroutine()))
	w.Family("go_info", "Information about the Go environment.", "gauge")
	w.Sample("go_info", 1, "version", runtime.Version())
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w.Family("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use.", "gauge")
	w.Sample("go_memstats_heap_alloc_bytes", float64(m.HeapAlloc))
	w.Family("go_memstats_sys_bytes", "Number of bytes obtained from system.", "gauge")
	w.Sample("go_memstats_sys_bytes", float64(m.Sys))

	st, ok := readProcStat()
	if !ok {
		return
	}
	// /proc/self/stat counts in USER_HZ clock ticks, 100 on Linux.
	const userHZ = 100
	w.Family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter")
	w.Sample("process_cpu_seconds_total", float64(st.utime+st.stime)/userHZ)
	w.Family("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge")
	w.Sample("process_resident_memory_bytes", float64(st.rss*int64(os.Getpagesize())))
	w.Family("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge")
	w.Sample("process_virtual_memory_bytes", float64(st.vsize))
	if boot, ok := bootTime(); ok {
		w.Family("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge")
		w.Sample("process_start_time_seconds", float64(boot)+float64(st.starttime)/userHZ)
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		w.Family("process_open_fds", "Number of open file descriptors.", "gauge")
		w.Sample("process_open_fds", float64(len(fds)))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		w.Family("process_max_fds", "Maximum number of open file descriptors.", "gauge")
		w.Sample("process_max_fds", float64(lim.Cur))
	}
}

type procStat struct{ utime, stime, starttime, vsize, rss int64 }

// readProcStat reads the fields of /proc/self/stat (proc(5)) Process
// exports.
func readProcStat() (procStat, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, state
	if len(f) < 22 {
		return procStat{}, false
	}
	num := func(field int) int64 { n, _ := strconv.ParseInt(f[field-3], 10, 64); return n }
	return procStat{utime: num(14), stime: num(15), starttime: num(22), vsize: num(23), rss: num(24)}, true
}

// bootTime is the btime line of /proc/stat: the boot time, in seconds
// since the epoch. It never changes, so /proc/stat is read once, not per
// scrape.
var bootTime = sync.OnceValues(readBootTime)

func readBootTime() (int64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

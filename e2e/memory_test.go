package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/internal/testskip"
	"github.com/resqued/resqued/pkg/queue"
)

// TestDaemon_FloodBoundedMemory: a handler that writes 100 MB to stdout and
// 100 MB to stderr (one unbroken line) must not grow the daemon by anything
// like that; the job still succeeds or fails normally and the failure
// record's backtrace stays bounded.
func TestDaemon_FloodBoundedMemory(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Flood", `yes "line of output" | head -c 104857600`)
	handler(t, dir, "FloodErr", `head -c 104857600 /dev/zero | tr '\0' x >&2; exit 1`)
	push(t, srv, "flood", `{"class":"Flood","args":[]}`)
	push(t, srv, "flood", `{"class":"FloodErr","args":[]}`)
	// Default log level: the lines are read and dropped, as in production.
	d := start(t, srv, dir, "--queues", "flood", "--log-level", "warn")
	waitProcessed(t, srv, 2)
	fs := failures(t, srv)
	if len(fs) != 1 || fs[0].Exception != "Resqued::HandlerFailed" {
		t.Fatalf("failures = %+v", fs)
	}
	size := 0
	for _, l := range fs[0].Backtrace {
		size += len(l)
	}
	if size == 0 || size > 64<<10 {
		t.Errorf("backtrace holds %d bytes, want 1..64 KiB", size)
	}
	if n := getInt(t, srv, queue.StatKey(ns, "failed")); n != 1 {
		t.Errorf("failed = %d", n)
	}
	hwm := peakRSS(t, d.cmd.Process.Pid)
	t.Logf("daemon peak RSS after 200 MB of handler output: %d KiB", hwm)
	// The race-detector build idles near 20-30 MB; buffering either flood
	// would put it past 100 MB.
	if hwm > 80<<10 {
		t.Errorf("daemon peak RSS %d KiB: handler output is being buffered", hwm)
	}
}

// peakRSS reads VmHWM (KiB) of pid from /proc.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		testskip.Skipf(t, "no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

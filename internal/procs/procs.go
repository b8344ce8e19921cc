// Package procs finds the processes on this host that Ruby Resque counts
// as live workers.
//
// Ruby Resque's prune_dead_workers lists them with
//
//	ps -A -o pid,command | grep -E "[r]esque:work|[r]esque:\sStarting|[r]esque-[0-9]"
//
// and unregisters every worker of this host whose pid is not among them.
// resqued uses the same pattern, so both agree on who is alive.
package procs

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// workerTitle is Ruby Resque's pattern for a live worker's command line,
// compiled on first use: only pruning dead workers needs it, and every
// resqued process (each command, each worker) would compile it at start.
var workerTitle = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`resque:work|resque:\sStarting|resque-[0-9]`)
})

// WorkerPIDs returns the pids of processes whose command line matches
// workerTitle. It reads /proc where there is one and runs ps elsewhere.
func WorkerPIDs() (map[int]bool, error) {
	if _, err := os.Stat("/proc/self/cmdline"); err == nil {
		return fromProc()
	}
	return fromPS()
}

func fromProc() (map[int]bool, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil || len(b) == 0 {
			continue // gone, or a kernel thread
		}
		if workerTitle().Match(bytes.ReplaceAll(b, []byte{0}, []byte{' '})) {
			out[pid] = true
		}
	}
	return out, nil
}

func fromPS() (map[int]bool, error) {
	b, err := exec.Command("ps", "-A", "-o", "pid,command").Output()
	if err != nil {
		return nil, err
	}
	out := map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.SplitN(line, " ", 2)
		if len(f) != 2 || !workerTitle().MatchString(f[1]) {
			continue
		}
		if pid, err := strconv.Atoi(f[0]); err == nil {
			out[pid] = true
		}
	}
	return out, sc.Err()
}

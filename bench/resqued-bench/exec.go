package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// benchArgs is the args array of every bench job, and so the stdin of
// every handler the bench or resqued starts.
var benchArgs = []byte(`[42,"bench"]`)

// spawnSpec is how the exec ceiling starts a handler: as pkg/runner does,
// with the same executable, working directory, environment shape and
// stdin payload.
type spawnSpec struct {
	path string
	dir  string
	env  []string
}

func newSpawnSpec(handlers, file, class string, extraEnv ...string) spawnSpec {
	// pkg/runner's environment: the daemon's own, plus these.
	env := cleanEnv(extraEnv...)
	env = append(env,
		"RESQUE_CLASS="+class,
		"RESQUE_QUEUE="+benchQueue,
		"RESQUE_JOB_ID=0123456789abcdef0123456789abcdef",
		"RESQUE_WORKER=bench:1:"+benchQueue,
		"RESQUED_PROTOCOL=1",
		"RESQUED_HANDLERS_DIR="+handlers,
		"RESQUE_RESULT_FD=3",
		"PWD="+handlers,
	)
	return spawnSpec{path: handlers + "/" + file, dir: handlers, env: env}
}

// spawnOnce runs the handler once the way pkg/runner does, minus
// everything about Redis, logging and bookkeeping: pipes for stdin,
// stdout and stderr and a result pipe on fd 3, its own process group
// (and PDEATHSIG, as the runner sets on Linux); the args are written to
// stdin, all output is read to EOF, and the process is waited for.
func spawnOnce(s spawnSpec) error {
	var pipes [4][2]*os.File // stdin, stdout, stderr, fd 3; [read, write]
	defer func() {
		for _, p := range pipes {
			for _, f := range p {
				if f != nil {
					f.Close()
				}
			}
		}
	}()
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		pipes[i] = [2]*os.File{r, w}
	}
	cmd := exec.Command(s.path)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdin = pipes[0][0]
	cmd.Stdout = pipes[1][1]
	cmd.Stderr = pipes[2][1]
	cmd.ExtraFiles = []*os.File{pipes[3][1]}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	// The child holds its own copies of these ends.
	for _, f := range []*os.File{pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]} {
		f.Close()
	}
	pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1] = nil, nil, nil, nil

	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		_, _ = pipes[0][1].Write(benchArgs) // EPIPE is fine, as in the runner
		pipes[0][1].Close()
		pipes[0][1] = nil
	}()
	for _, f := range []*os.File{pipes[2][0], pipes[3][0]} {
		go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, f) }()
	}
	_, _ = io.Copy(io.Discard, pipes[1][0])
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	return nil
}

// spawnResult is one exec-ceiling run.
type spawnResult struct {
	wall    time.Duration
	perExec time.Duration // mean time of one spawnOnce
	cpu     time.Duration // CPU of this process and the handlers, per exec
}

func (r spawnResult) rate(n int) float64 { return float64(n) / r.wall.Seconds() }

// spawnMany runs spawnOnce n times on par goroutines.
func spawnMany(s spawnSpec, n, par int) (spawnResult, error) {
	var next atomic.Int64
	var total atomic.Int64
	errs := make(chan error, par)
	cpu0 := cpuSelfAndChildren()
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < par; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				t := time.Now()
				if err := spawnOnce(s); err != nil {
					errs <- err
					return
				}
				total.Add(int64(time.Since(t)))
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu := cpuSelfAndChildren() - cpu0
	close(errs)
	if err := <-errs; err != nil {
		return spawnResult{}, err
	}
	return spawnResult{wall: wall, perExec: time.Duration(total.Load() / int64(n)), cpu: cpu / time.Duration(n)}, nil
}

// cpuSelfAndChildren is the user and system CPU of this process and of
// its children that have been waited for.
func cpuSelfAndChildren() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	return rusageCPU(&self) + rusageCPU(&kids)
}

func rusageCPU(r *syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// shortName is a handler file's class name for the report.
func shortName(file string) string { return strings.TrimSuffix(file, ".sh") }

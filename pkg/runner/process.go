package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ProtocolVersion is the value of RESQUED_PROTOCOL in handler environments.
const ProtocolVersion = "1"

// Job is one unit of work.
type Job struct {
	Class  string // Resque class name, e.g. "Resize" or "Mailers::Welcome"
	Queue  string
	ID     string // payload id, may be empty
	Worker string // resque worker id, for RESQUE_WORKER
	Args   []byte // the payload's args array as raw JSON, written verbatim to stdin
	// Attempt is which run of the job this is (RESQUE_ATTEMPT); zero
	// means 1.
	Attempt int
	// Logger is the per-job logger (already .With(job fields)); nil means
	// the runner's logger.
	Logger hclog.Logger
	// Stdout and Stderr, when set, receive the handler's output lines as
	// they are instead of the logger (resqued try).
	Stdout, Stderr io.Writer
	// OnProgress, when set, receives each {"progress": ...} line the
	// handler writes on its result descriptor, as it arrives.
	OnProgress func(Progress)
	// Env holds extra "NAME=value" entries for this job's handler, after
	// the base environment and before the RESQUE_* variables (which
	// always win). Ignored by persistent handlers, whose environment is
	// fixed when their process starts.
	Env []string
	// Limits, when set, are this job's limits instead of the runner's
	// (Config.Limits). For a persistent handler, those of the job that
	// starts its process apply to the process.
	Limits *Limits
	// Timeout, when positive, is this job's wall clock limit instead of
	// the runner's (Config.Timeout).
	Timeout time.Duration
}

// Result describes a handler process that ran.
type Result struct {
	Duration   time.Duration
	StderrTail []string // last lines of stderr (bounded by StderrTail bytes), oldest first, without trailing newlines
	// StdoutTail is the same for stdout, kept only when Config.StdoutTail
	// is set.
	StdoutTail []string
	// Report is what the handler wrote on its result descriptor.
	Report Report
	// Stopped is set when the handler was asked to stop (Stop, Kill, its
	// context) while it ran, even if it then exited 0.
	Stopped bool
}

// stopReason records why a handler was asked to stop; the first reason wins.
type stopReason int

const (
	notStopped stopReason = iota
	stopRequested
	timedOut
)

// Process is a running handler. Its methods are safe for concurrent use.
type Process struct {
	class       string
	path        string
	pid         int
	cmd         *exec.Cmd
	logger      hclog.Logger
	termTimeout time.Duration
	timeout     time.Duration
	start       time.Time

	stdin  *os.File // write end of the handler's stdin
	stdout *os.File // read end of the handler's stdout
	stderr *os.File // read end of the handler's stderr
	// results is the read end of the handler's result descriptor.
	results *os.File
	report  *reportReader
	// lineLog is the logger output lines go to: the job's, or for a
	// persistent process, the current job's.
	lineLog atomic.Pointer[hclog.Logger]
	tail    *tailBuffer
	outTail *tailBuffer   // nil unless Config.StdoutTail
	ioDone  chan struct{} // closed when stdin, stdout and stderr are done

	timeoutTimer *time.Timer // nil without timeout
	stopCtx      func() bool

	limits    Limits        // in force; zero without limits
	group     limitGroup    // the job's cgroup; nil without one
	output    *limitCounter // nil without an output limit
	watchStop chan struct{} // closed at exit to end watch; nil without a watcher
	peak      atomic.Int64  // the most resident memory watch saw, in bytes

	mu        sync.Mutex
	exited    bool // the leader exited; the group must no longer be signalled
	reason    stopReason
	killed    bool      // SIGKILL was sent by Kill, after TermTimeout or at a limit
	hit       *limitHit // the limit that killed the handler, if one did
	killTimer *time.Timer

	done   chan struct{} // closed when result and err are set
	result *Result
	err    error
}

// Run starts the handler for job and waits for it. See Start and
// Process.Wait.
func (r *Runner) Run(ctx context.Context, job Job) (*Result, error) {
	p, err := r.Start(ctx, job)
	if err != nil {
		return nil, err
	}
	return p.Wait()
}

// Start resolves the handler for job.Class and starts it. Cancelling ctx
// stops the handler as Process.Stop does. If ctx is already done, Start
// returns ctx.Err() without starting anything. Resolution errors are those
// of Resolve; a failure to execute the handler is returned as
// "start handler <path>: <error>".
func (r *Runner) Start(ctx context.Context, job Job) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := r.Resolve(job.Class)
	if err != nil {
		return nil, err
	}
	return r.spawn(ctx, job, path, nil)
}

// spawn starts path for job. With results set, the process is
// persistent: its stdin stays open for the caller, results reads its
// result fd instead of the process's own reportReader, and its output is
// logged with whatever lineLog is current.
func (r *Runner) spawn(ctx context.Context, job Job, path string, results func(*os.File) error) (*Process, error) {
	logger := job.Logger
	if logger == nil {
		logger = r.logger.With("class", job.Class)
	}
	args := job.Args
	if len(args) == 0 {
		args = []byte("[]")
	}

	var pipes [4][2]*os.File // stdin, stdout, stderr, result fd; [read, write]
	closeAll := func() {
		for _, p := range pipes {
			for _, f := range p {
				if f != nil {
					f.Close()
				}
			}
		}
	}
	for i := range pipes {
		pr, pw, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("start handler %s: %w", path, err)
		}
		pipes[i] = [2]*os.File{pr, pw}
	}

	limits := r.limitsFor(job)
	if results != nil {
		limits.CPU = 0 // not applied to persistent processes (docs/handlers.md)
	}
	cmd := exec.Command(path)
	cmd.Dir = r.dir
	cmd.Env = r.environ(job)
	cmd.Stdin = pipes[0][0]
	cmd.Stdout = pipes[1][1]
	cmd.Stderr = pipes[2][1]
	cmd.ExtraFiles = []*os.File{pipes[3][1]} // fd 3: ResultFD
	cmd.SysProcAttr = sysProcAttr()
	// With a cgroup (Config.Cgroup, see limitGroup), every job is born
	// in a cgroup of its own: its memory and procs limits are the
	// kernel's to enforce, left out of the shim and the watcher, and
	// whatever it leaves behind is killed with it, even a process that
	// left its process group.
	var group limitGroup
	rl, watched := limits, limits
	if r.groups != nil {
		g, err := r.groups(limits)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("start handler %s: %w", path, err)
		}
		group = g
		bornIn(cmd.SysProcAttr, g.fd())
		rl.Memory, watched.Memory, watched.Procs = 0, 0, 0
	}
	viaShim := shimmed(cmd, path, rl)
	if err := startWhenNotBusy(cmd); err != nil {
		closeAll()
		if group != nil {
			_, _ = group.finish()
		}
		return nil, explainStart(job.Class, path, err)
	}
	start := time.Now()
	// The child has its own copies of these ends.
	pipes[0][0].Close()
	pipes[1][1].Close()
	pipes[2][1].Close()
	pipes[3][1].Close()

	p := &Process{
		class:       job.Class,
		path:        path,
		pid:         cmd.Process.Pid,
		cmd:         cmd,
		logger:      logger,
		termTimeout: r.termTimeout,
		start:       start,
		stdin:       pipes[0][1],
		stdout:      pipes[1][0],
		stderr:      pipes[2][0],
		results:     pipes[3][0],
		report:      &reportReader{onProgress: job.OnProgress, logger: logger},
		tail:        newTailBuffer(r.stderrTail),
		outTail:     newTailBuffer(r.stdoutTail),
		ioDone:      make(chan struct{}),
		done:        make(chan struct{}),
		limits:      limits,
		group:       group,
		timeout:     r.timeoutFor(job),
	}
	if limits.Output > 0 {
		p.output = &limitCounter{max: limits.Output, over: func(n int64) {
			p.hitLimit(limitHit{limit: LimitOutput, max: limits.Output, seen: n})
		}}
	}
	if watched.Memory > 0 || watched.CPU > 0 || watched.Procs > 0 {
		p.watchStop = make(chan struct{})
		go p.watch(watched, viaShim, p.watchStop)
	}
	logger.Debug("handler started", "path", path, "pid", p.pid)

	p.lineLog.Store(&logger)
	var wg sync.WaitGroup
	wg.Add(4)
	switch {
	case results != nil:
		wg.Done() // stdin stays open: the caller writes one job per line
	case len(args) <= pipeAtomic:
		// Fits in an empty pipe: the write cannot block, so it needs no
		// goroutine of its own.
		p.writeStdin(args, &wg)
	default:
		go p.writeStdin(args, &wg)
	}
	go func() {
		defer wg.Done()
		defer p.results.Close()
		read := func(f *os.File) error { return p.report.read(f) }
		if results != nil {
			read = results
		}
		if err := read(p.results); err != nil && !errors.Is(err, os.ErrClosed) {
			p.logger.Debug("read result fd", "error", err)
		}
	}()
	go p.forward(p.stdout, "stdout", p.outTail, job.Stdout, r.maxLine, &wg)
	go p.forward(p.stderr, "stderr", p.tail, job.Stderr, r.maxLine, &wg)
	go func() {
		wg.Wait()
		close(p.ioDone)
	}()

	if p.timeout > 0 && results == nil {
		p.timeoutTimer = time.AfterFunc(p.timeout, func() { p.stop(timedOut) })
	}
	p.stopCtx = context.AfterFunc(ctx, func() { p.stop(stopRequested) })
	go p.supervise()
	return p, nil
}

// environ returns the handler environment for job: the base environment
// (Config.Env, or the process's own as at the first job), without the
// variables set here, and the job's.
func (r *Runner) environ(job Job) []string {
	base := r.baseEnv()
	env := make([]string, len(base), len(base)+len(job.Env)+9)
	copy(env, base)
	env = append(env, job.Env...)
	return append(env,
		"RESQUE_CLASS="+job.Class,
		"RESQUE_QUEUE="+job.Queue,
		"RESQUE_JOB_ID="+job.ID,
		"RESQUE_WORKER="+job.Worker,
		"RESQUED_PROTOCOL="+ProtocolVersion,
		"RESQUED_HANDLERS_DIR="+r.dir,
		"RESQUE_RESULT_FD="+strconv.Itoa(ResultFD),
		"RESQUE_ATTEMPT="+strconv.Itoa(max(job.Attempt, 1)),
		"PWD="+r.dir,
	)
}

// baseEnv filters the base environment once: it does not change while
// jobs run.
func (r *Runner) baseEnv() []string {
	r.envOnce.Do(func() {
		base := r.env
		if base == nil {
			base = os.Environ()
		}
		for _, kv := range base {
			name, _, _ := strings.Cut(kv, "=")
			switch name {
			case "RESQUE_CLASS", "RESQUE_QUEUE", "RESQUE_JOB_ID", "RESQUE_WORKER",
				"RESQUED_PROTOCOL", "RESQUED_HANDLERS_DIR", "RESQUE_RESULT_FD", "RESQUE_ATTEMPT", "PWD":
				continue
			}
			r.filteredEnv = append(r.filteredEnv, kv)
		}
	})
	return r.filteredEnv
}

// Pid returns the process id of the handler, which is also its process
// group id.
func (p *Process) Pid() int { return p.pid }

// Stop sends SIGTERM to the handler's process group now and SIGKILL to the
// group after the runner's TermTimeout. It is idempotent, safe to call from
// any goroutine and a no-op once the handler has exited.
func (p *Process) Stop() { p.stop(stopRequested) }

// Kill sends SIGKILL to the handler's process group now. It is idempotent,
// safe to call from any goroutine and a no-op once the handler has exited.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited || p.killed {
		return
	}
	if p.reason == notStopped {
		p.reason = stopRequested
	}
	p.killed = true
	p.logger.Debug("killing handler", "pid", p.pid)
	p.signalLocked(syscall.SIGKILL)
}

func (p *Process) stop(reason stopReason) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited || p.reason != notStopped {
		return
	}
	p.reason = reason
	if reason == timedOut {
		p.logger.Warn("handler timed out, stopping", "pid", p.pid, "timeout", p.timeout)
	} else {
		p.logger.Debug("stopping handler", "pid", p.pid)
	}
	p.signalLocked(syscall.SIGTERM)
	p.killTimer = time.AfterFunc(p.termTimeout, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.exited || p.killed {
			return
		}
		p.killed = true
		p.logger.Warn("handler did not exit after SIGTERM, killing", "pid", p.pid, "term_timeout", p.termTimeout)
		p.signalLocked(syscall.SIGKILL)
	})
}

// signalLocked sends sig to the handler's process group unless the leader
// has exited. p.mu must be held.
func (p *Process) signalLocked(sig syscall.Signal) {
	if p.exited {
		return
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.logger.Warn("signal handler process group", "pgid", p.pid, "signal", signalName(sig), "error", err)
	}
}

// Wait waits until the handler has exited and its output has been drained.
// It returns a nil error on exit status 0 and an *ExitError otherwise; the
// Result is returned in both cases. Calling Wait more than once returns the
// same values.
func (p *Process) Wait() (*Result, error) {
	<-p.done
	return p.result, p.err
}

// supervise waits for the handler to exit, cleans up its process group and
// output, and records the outcome.
func (p *Process) supervise() {
	defer close(p.done)

	// Where possible, observe the exit without reaping the leader: its
	// zombie keeps the process group id reserved while the group is killed.
	var waitErr error
	reaped := false
	if !waitExited(p.pid) {
		waitErr = p.cmd.Wait()
		reaped = true
	}
	duration := time.Since(p.start)

	p.mu.Lock()
	// Kill whatever the handler left behind in its group.
	p.signalLocked(syscall.SIGKILL)
	p.exited = true
	if p.killTimer != nil {
		p.killTimer.Stop()
	}
	reason, hit := p.reason, p.hit
	p.mu.Unlock()
	if p.watchStop != nil {
		close(p.watchStop)
	}
	if p.timeoutTimer != nil {
		p.timeoutTimer.Stop()
	}
	p.stopCtx()

	if !reaped {
		waitErr = p.cmd.Wait()
	}
	var usage groupUsage
	if p.group != nil {
		var err error
		if usage, err = p.group.finish(); err != nil {
			p.logger.Warn("read and remove the job's cgroup", "error", err)
		}
	}
	p.drain()

	p.result = &Result{Duration: duration, StderrTail: p.tail.snapshot(), StdoutTail: p.outTail.snapshot(), Report: p.report.get(), Stopped: reason != notStopped}
	state := p.cmd.ProcessState
	if state == nil {
		p.err = fmt.Errorf("wait handler %s: %w", p.path, waitErr)
		return
	}
	if state.Success() {
		p.logger.Debug("handler exited", "pid", p.pid, "status", 0, "duration", duration)
		return
	}
	ee := &ExitError{
		Class:      p.class,
		Code:       state.ExitCode(),
		TimedOut:   reason == timedOut,
		Stopped:    reason == stopRequested,
		Duration:   duration,
		StderrTail: slices.Clone(p.result.StderrTail),
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ee.Code = -1
		ee.Signal = ws.Signal()
	}
	if ee.TimedOut {
		ee.Timeout = p.timeout
	}
	if !p.limits.IsZero() {
		ee.InForce = p.limits
		if hit == nil && reason == notStopped {
			hit = usage.hit(p.limits)
		}
		if hit == nil && reason == notStopped && ee.Signal != 0 {
			hit = limitOf(p.limits, ee.Signal, state.SystemTime()+state.UserTime())
		}
		if hit == nil && reason == notStopped && p.limits.Memory > 0 && p.group == nil {
			// No signal, but its resident peak passed the memory limit
			// before the rlimit refused it more: it failed at the limit.
			peak := max(p.peak.Load(), handlerMaxRSS(state))
			if peak > p.limits.Memory {
				hit = &limitHit{limit: LimitMemory, max: p.limits.Memory, seen: peak}
				ee.LimitRefused = true
			}
		}
		if hit != nil {
			ee.Limit, ee.LimitMax, ee.LimitSeen = hit.limit, hit.max, hit.seen
			if hit.limit == LimitMemory {
				ee.LimitSeen = max(ee.LimitSeen, p.peak.Load())
			}
		}
	}
	if ee.Signal != 0 {
		p.logger.Debug("handler exited", "pid", p.pid, "signal", signalName(ee.Signal), "duration", duration)
	} else {
		p.logger.Debug("handler exited", "pid", p.pid, "status", ee.Code, "duration", duration)
	}
	p.err = ee
}

// drain waits for the stdin writer and output readers to finish. If
// something outside the process group still holds the pipes open after
// TermTimeout, it closes the runner's ends so that they finish.
func (p *Process) drain() {
	select {
	case <-p.ioDone:
		return
	default:
	}
	t := time.NewTimer(p.termTimeout)
	defer t.Stop()
	select {
	case <-p.ioDone:
	case <-t.C:
		p.logger.Warn("handler output still open after exit, closing pipes", "pid", p.pid)
		p.stdin.Close()
		p.stdout.Close()
		p.stderr.Close()
		p.results.Close()
		<-p.ioDone
	}
}

// pipeAtomic is PIPE_BUF, the least a pipe holds (Linux's default is
// 64 KiB; a user over pipe-user-pages-soft gets one page).
const pipeAtomic = 4096

// writeStdin writes args to the handler's stdin and closes it. A handler
// that does not read its stdin is not an error.
func (p *Process) writeStdin(args []byte, wg *sync.WaitGroup) {
	defer wg.Done()
	_, err := p.stdin.Write(args)
	if err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, os.ErrClosed) {
		p.logger.Debug("write handler stdin", "error", err)
	}
	p.stdin.Close()
}

// forward logs the lines read from f and records them in tail (if not nil).
func (p *Process) forward(f *os.File, stream string, tail *tailBuffer, to io.Writer, maxLine int, wg *sync.WaitGroup) {
	defer wg.Done()
	defer f.Close()
	err := splitLines(p.output.reader(f), maxLine, func(line []byte, whole bool) {
		if tail != nil {
			tail.add(line)
		}
		if to != nil {
			_, _ = to.Write(line)
			if whole {
				_, _ = to.Write([]byte{'\n'})
			}
			return
		}
		logLine(*p.lineLog.Load(), stream, line, whole)
	})
	if err != nil && !errors.Is(err, os.ErrClosed) {
		p.logger.Debug("read handler output", "stream", stream, "error", err)
	}
}

// startWhenNotBusy starts cmd, trying again for up to about a second while
// exec fails with ETXTBSY: the handler file is still open for writing,
// as while it is being deployed, or for the instant a concurrent fork
// holds a copy of a descriptor (golang/go#22315).
func startWhenNotBusy(cmd *exec.Cmd) error {
	delay := time.Millisecond
	for {
		err := cmd.Start()
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || delay > 512*time.Millisecond {
			return err
		}
		time.Sleep(delay)
		delay *= 2
		// A Cmd cannot be started twice: copy it.
		next := exec.Command(cmd.Path)
		next.Args, next.Dir, next.Env = cmd.Args, cmd.Dir, cmd.Env
		next.Stdin, next.Stdout, next.Stderr = cmd.Stdin, cmd.Stdout, cmd.Stderr
		next.SysProcAttr, next.ExtraFiles = cmd.SysProcAttr, cmd.ExtraFiles
		*cmd = *next
	}
}

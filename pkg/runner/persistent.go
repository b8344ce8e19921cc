package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IsPersistent reports whether the handler at path serves many jobs in one
// process: its file name has ".persistent" before its extension, as in
// Resize.persistent.py, or ends in it (Resize.persistent).
func IsPersistent(path string) bool {
	base := filepath.Base(path)
	return strings.Contains(base, ".persistent.") || strings.HasSuffix(base, ".persistent")
}

// Running is a job in progress, in its own process or in a persistent one.
type Running interface {
	Pid() int
	Stop()
	Kill()
	Wait() (*Result, error)
}

// SlotConfig tunes a Slot.
type SlotConfig struct {
	// MaxJobs recycles a persistent process after that many jobs. Zero
	// means 1000; negative means never.
	MaxJobs int
	// MaxRSS recycles a persistent process, after a job, once its
	// resident memory passes this many bytes. Zero means no limit.
	MaxRSS int64
}

// Slot runs one job at a time for one worker. Jobs of exec handlers get a
// process each; jobs of persistent handlers go to the slot's process for
// that handler, started on first use and replaced when it dies, breaks the
// protocol, is stopped, or is recycled.
//
// The persistent protocol (version 1): the process gets one job per line
// on stdin, {"id","queue","class","args"}, and answers on its result fd
// (RESQUE_RESULT_FD) with the same lines as exec handlers ({"progress"},
// {"result"}, {"exception","error","backtrace"}) and ends each job with a
// line holding "done": {"done":"ok","result":...} or {"done":"failed",
// "exception":...,"error":...,"backtrace":[...]}. Anything on that fd that
// is not a JSON object fails the job and replaces the process. On EOF of
// stdin the process should exit.
type Slot struct {
	r   *Runner
	cfg SlotConfig

	mu    sync.Mutex
	procs map[string]*persistentProc // by handler path
}

// NewSlot returns a Slot of r.
func (r *Runner) NewSlot(cfg SlotConfig) *Slot {
	if cfg.MaxJobs == 0 {
		cfg.MaxJobs = 1000
	}
	return &Slot{r: r, cfg: cfg, procs: map[string]*persistentProc{}}
}

// Start runs job: in its own process, or in the slot's persistent process
// for its handler. One job at a time.
func (s *Slot) Start(ctx context.Context, job Job) (Running, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := s.r.Resolve(job.Class)
	if err != nil {
		return nil, err
	}
	if !IsPersistent(path) {
		return s.r.spawn(ctx, job, path, nil)
	}
	pp, err := s.proc(job, path)
	if err != nil {
		return nil, err
	}
	return pp.run(ctx, job)
}

// Close ends every persistent process: stdin is closed so each can exit on
// its own, and after the runner's TermTimeout it is stopped.
func (s *Slot) Close() {
	s.mu.Lock()
	procs := s.procs
	s.procs = map[string]*persistentProc{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, pp := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); pp.retire() }()
	}
	wg.Wait()
}

func (s *Slot) proc(job Job, path string) (*persistentProc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pp := s.procs[path]; pp != nil && !pp.dead() && !pp.p.leaderExited() {
		return pp, nil
	}
	pp := &persistentProc{slot: s, path: path, ready: make(chan struct{}, 1)}
	boot := job
	boot.ID, boot.Queue, boot.OnProgress = "", "", nil
	p, err := s.r.spawn(context.Background(), boot, path, pp.push)
	if err != nil {
		return nil, err
	}
	pp.p = p
	s.procs[path] = pp
	// A process that exits between jobs (recycling itself, or a crash
	// while idle) is forgotten at once, not handed the next job.
	go func() { <-p.done; s.forget(pp) }()
	logger := *p.lineLog.Load()
	logger.Debug("persistent handler started", "path", path, "pid", p.pid)
	return pp, nil
}

func (s *Slot) forget(pp *persistentProc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.procs[pp.path] == pp {
		delete(s.procs, pp.path)
	}
}

// persistentProc is one long-lived handler process.
type persistentProc struct {
	slot *Slot
	path string
	p    *Process
	jobs int

	// Result-fd lines wait here for the job that reads them; the reader
	// never blocks on a job (a process that died with lines unread must
	// still be reaped). nil marks an over-long line.
	mu     sync.Mutex
	queue  [][]byte
	queued int
	ready  chan struct{} // a line was queued
}

// maxQueued bounds the unread result-fd bytes; past it, lines without
// "done" are dropped.
const maxQueued = 4 << 20

func (pp *persistentProc) push(line []byte) {
	pp.mu.Lock()
	if pp.queued+len(line) > maxQueued && line != nil && !strings.Contains(string(line), `"done"`) {
		pp.mu.Unlock()
		return
	}
	pp.queue = append(pp.queue, line)
	pp.queued += len(line)
	pp.mu.Unlock()
	select {
	case pp.ready <- struct{}{}:
	default:
	}
}

// pop returns the next queued line, if any.
func (pp *persistentProc) pop() ([]byte, bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if len(pp.queue) == 0 {
		return nil, false
	}
	l := pp.queue[0]
	pp.queue = pp.queue[1:]
	pp.queued -= len(l)
	return l, true
}

func (pp *persistentProc) clear() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.queue, pp.queued = nil, 0
}

func (pp *persistentProc) dead() bool {
	select {
	case <-pp.p.done:
		return true
	default:
		return false
	}
}

// leaderExited reports whether the process has exited (its output may
// still be draining).
func (p *Process) leaderExited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// retire closes stdin and stops the process if it does not exit within
// the grace period.
func (pp *persistentProc) retire() {
	pp.p.stdin.Close()
	t := time.NewTimer(pp.p.termTimeout)
	defer t.Stop()
	select {
	case <-pp.p.done:
	case <-t.C:
		pp.p.Stop()
		<-pp.p.done
	}
}

// pjob is one job in a persistent process.
type pjob struct {
	ppMu  sync.Mutex // pp changes if the job is re-sent to a fresh process
	pp    *persistentProc
	class string
	start time.Time

	stopOnce sync.Once
	stop     chan stopReason // Stop, Kill, timeout, ctx
	done     chan struct{}
	result   *Result
	err      error
}

func (pp *persistentProc) run(ctx context.Context, job Job) (*pjob, error) {
	line, err := json.Marshal(struct {
		ID    string          `json:"id"`
		Queue string          `json:"queue"`
		Class string          `json:"class"`
		Args  json.RawMessage `json:"args"`
	}{job.ID, job.Queue, job.Class, argsOrEmpty(job.Args)})
	if err != nil {
		return nil, fmt.Errorf("encode job for persistent handler: %w", err)
	}
	logger := job.Logger
	if logger == nil {
		logger = pp.slot.r.logger.With("class", job.Class)
	}
	pp.p.lineLog.Store(&logger)
	pp.p.tail.reset()
	j := &pjob{pp: pp, class: job.Class, start: time.Now(), stop: make(chan stopReason, 1), done: make(chan struct{})}
	pp.clear() // result lines left over from a previous job
	go j.supervise(ctx, job, append(line, '\n'))
	return j, nil
}

func argsOrEmpty(a []byte) json.RawMessage {
	if len(a) == 0 {
		return json.RawMessage("[]")
	}
	return a
}

func (j *pjob) proc() *persistentProc {
	j.ppMu.Lock()
	defer j.ppMu.Unlock()
	return j.pp
}

func (j *pjob) Pid() int { return j.proc().p.pid }
func (j *pjob) Stop()    { j.send(stopRequested) }
func (j *pjob) Kill()    { j.send(stopRequested); j.proc().p.Kill() }
func (j *pjob) send(r stopReason) {
	select {
	case j.stop <- r:
	default:
	}
}

func (j *pjob) Wait() (*Result, error) {
	<-j.done
	return j.result, j.err
}

// supervise feeds the job to the process and waits for its "done" line,
// the process's death, a stop, or the timeout.
func (j *pjob) supervise(ctx context.Context, job Job, line []byte) {
	defer close(j.done)
	pp := j.proc()
	p := pp.p
	var report Report
	finish := func(err error) {
		j.result = &Result{Duration: time.Since(j.start), StderrTail: p.tail.snapshot(), Report: report}
		j.err = err
	}
	// Write the job without blocking supervision: a process that does not
	// read is caught by the timeout or a stop like any other.
	write := func(p *Process) {
		if _, err := p.stdin.Write(line); err != nil {
			p.logger.Debug("write job to persistent handler", "error", err)
		}
	}
	go write(p)
	var timeout <-chan time.Time
	if t := pp.slot.r.timeout; t > 0 {
		tm := time.NewTimer(t)
		defer tm.Stop()
		timeout = tm.C
	}
	rr := &reportReader{onProgress: job.OnProgress, logger: *p.lineLog.Load()}
	kill := func(reason stopReason) error {
		pp.slot.forget(pp)
		p.stop(reason)
		<-p.done
		ee := j.exitError(p)
		ee.TimedOut, ee.Stopped = reason == timedOut, reason == stopRequested
		if ee.TimedOut {
			ee.Timeout = pp.slot.r.timeout
		}
		return ee
	}
	touched, retried := false, false // a line came for this job; it was re-sent once
	for {
		l, ok := pp.pop()
		if !ok {
			select {
			case <-pp.ready:
				continue
			case <-p.done:
				if l, ok = pp.pop(); !ok { // lines written just before dying count
					pp.slot.forget(pp)
					if p.err == nil && !touched && !retried {
						// It exited cleanly without a word about this
						// job: it left between jobs (recycling itself)
						// and never read it. Hand the job to a fresh one.
						retried = true
						next, err := pp.slot.proc(job, pp.path)
						if err != nil {
							finish(err)
							return
						}
						j.ppMu.Lock()
						j.pp, pp, p = next, next, next.p
						j.ppMu.Unlock()
						p.lineLog.Store(rr.loggerPtr())
						pp.clear()
						go write(p)
						continue
					}
					finish(j.exitError(p))
					return
				}
			case r := <-j.stop:
				finish(kill(r))
				return
			case <-ctx.Done():
				finish(kill(stopRequested))
				return
			case <-timeout:
				finish(kill(timedOut))
				return
			}
		}
		touched = true
		{
			if l == nil {
				finish(j.broken(p, "a result line over 64 KiB"))
				return
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(l, &m); err != nil || m == nil {
				finish(j.broken(p, "not a JSON object: "+abbreviate(l)))
				return
			}
			rr.line(l)
			report = rr.get()
			if raw, ok := m["done"]; ok {
				var outcome string
				_ = json.Unmarshal(raw, &outcome)
				pp.jobs++
				pp.maybeRecycle()
				if outcome == "ok" {
					report.Failure = nil
					finish(nil)
				} else {
					finish(&ExitError{Class: j.class, Code: 1, Reported: true, Duration: time.Since(j.start), StderrTail: p.tail.snapshot()})
				}
				return
			}
		}
	}
}

// exitError describes the death of the process in the middle of the job.
func (j *pjob) exitError(p *Process) *ExitError {
	<-p.done
	ee := &ExitError{Class: j.class, Code: -1, Duration: time.Since(j.start), StderrTail: p.tail.snapshot()}
	var pe *ExitError
	switch {
	case errors.As(p.err, &pe):
		ee.Code, ee.Signal = pe.Code, pe.Signal
	case p.err == nil:
		ee.Code = 0 // exited cleanly, but mid-job: still a failure
		ee.Exited = true
	}
	return ee
}

// broken fails the job for a protocol violation and replaces the process.
func (j *pjob) broken(p *Process, what string) error {
	j.pp.slot.forget(j.pp)
	p.Kill()
	<-p.done
	return &ExitError{Class: j.class, Code: -1, Protocol: what, Duration: time.Since(j.start), StderrTail: p.tail.snapshot()}
}

// maybeRecycle retires the process after MaxJobs jobs or past MaxRSS.
func (pp *persistentProc) maybeRecycle() {
	cfg := pp.slot.cfg
	why := ""
	switch {
	case cfg.MaxJobs > 0 && pp.jobs >= cfg.MaxJobs:
		why = "max jobs"
	case cfg.MaxRSS > 0 && rss(pp.p.pid) > cfg.MaxRSS:
		why = "max rss"
	}
	if why == "" {
		return
	}
	pp.slot.forget(pp)
	pp.p.logger.Debug("recycling persistent handler", "pid", pp.p.pid, "jobs", pp.jobs, "reason", why)
	go pp.retire()
}

// rss is the resident memory of pid in bytes (0 if unknown).
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

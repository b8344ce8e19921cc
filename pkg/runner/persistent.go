package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
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
// is not a JSON object fails the job and replaces the process. Between a
// done line and the next job the process must write nothing on that fd;
// if it does, it is killed and replaced, and the next job goes to a fresh
// process. A job the process may have read is never sent to another
// process: if the process exits first, the job fails. Only a job it
// provably never read a byte of (the write to its stdin failed with
// EPIPE, or after its exit the whole line was still in the pipe) goes to
// a fresh process, once. On EOF of stdin the process should exit.
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
	for {
		pp, fresh, err := s.proc(job, path)
		if err != nil {
			return nil, err
		}
		j, sent := pp.run(ctx, job, fresh)
		if sent || fresh {
			return j, nil
		}
		// The job was not sent: the process it was meant for exited or
		// broke the protocol between jobs. A fresh process takes it.
		s.forget(pp)
	}
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

// proc returns the slot's process for path, starting one if there is
// none; fresh reports that it was just started.
func (s *Slot) proc(job Job, path string) (pp *persistentProc, fresh bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pp := s.procs[path]; pp != nil && !pp.dead() && !pp.p.leaderExited() {
		return pp, false, nil
	}
	pp = &persistentProc{slot: s, path: path, started: make(chan struct{})}
	boot := job
	boot.ID, boot.Queue, boot.OnProgress = "", "", nil
	p, err := s.r.spawn(context.Background(), boot, path, pp.read)
	if err != nil {
		return nil, false, err
	}
	pp.p = p
	close(pp.started)
	s.procs[path] = pp
	// A process that exits between jobs (recycling itself, or a crash
	// while idle) is forgotten at once, not handed the next job. Its
	// stdin is closed unless a job's supervisor still needs it.
	go func() {
		<-p.done
		s.forget(pp)
		pp.mu.Lock()
		busy := pp.busy
		pp.mu.Unlock()
		if !busy {
			p.stdin.Close()
		}
	}()
	logger := *p.lineLog.Load()
	logger.Debug("persistent handler started", "path", path, "pid", p.pid)
	return pp, true, nil
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
	slot    *Slot
	path    string
	p       *Process
	started chan struct{} // closed once p is set
	jobs    int           // jobs ended by a done line; one job at a time touches it

	// wmu serializes the writes of job lines to stdin; written counts
	// the bytes they put into the pipe.
	wmu     sync.Mutex
	written int64

	// mu ties the result fd to job dispatch. The reader takes each chunk
	// out of the pipe and sorts its lines while holding mu, so whoever
	// holds mu sees every byte the process has written so far: handed to
	// a job, in partial, or still in the pipe. A line belongs to the job
	// that was outstanding when it was read; a job stops being
	// outstanding as its done line is read.
	mu      sync.Mutex
	cur     *pjob  // the outstanding job: sent, and its done line not yet read
	partial []byte // the start of a line whose end has not been read
	long    bool   // inside a line over maxReportLine: its bytes are dropped
	broken  string // how the process broke the protocol; nothing more is read after
	busy    bool   // a job's supervisor uses the process (and its stdin)
}

// maxQueued bounds the unread result-fd bytes of a job; past it, its
// progress, result and failure lines are dropped. Its done line, or the
// protocol violation that ends it, always gets through: there is at most
// one, and it is at most maxReportLine bytes.
const maxQueued = 4 << 20

// read reads the result fd until EOF.
func (pp *persistentProc) read(f *os.File) error {
	<-pp.started
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("read result fd: %w", err)
	}
	buf := make([]byte, 32<<10)
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			pp.mu.Lock()
			defer pp.mu.Unlock()
			for {
				n, rerr = syscall.Read(int(fd), buf)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				return false // wait until readable
			}
			if n > 0 {
				pp.takeLocked(buf[:n])
			}
			return true
		})
		switch {
		case err != nil:
			return fmt.Errorf("read result fd: %w", err)
		case rerr != nil:
			return fmt.Errorf("read result fd: %w", rerr)
		case n <= 0: // EOF: a last line without newline counts
			pp.mu.Lock()
			if len(pp.partial) > 0 && !pp.long && pp.broken == "" {
				pp.lineLocked(bytes.TrimSpace(pp.partial))
			}
			pp.partial = nil
			pp.mu.Unlock()
			return nil
		}
	}
}

// takeLocked splits data into lines, continuing partial. pp.mu is held.
func (pp *persistentProc) takeLocked(data []byte) {
	for len(data) > 0 && pp.broken == "" {
		i := bytes.IndexByte(data, '\n')
		piece := data
		if i >= 0 {
			piece = data[:i]
		}
		if !pp.long {
			if len(pp.partial)+len(piece) > maxReportLine+1 { // +1: a "\r" before the newline
				pp.long, pp.partial = true, pp.partial[:0]
				pp.violateLocked("a result line over 64 KiB")
			} else {
				pp.partial = append(pp.partial, piece...)
			}
		}
		if i < 0 {
			return
		}
		data = data[i+1:]
		if pp.long {
			pp.long = false
			continue
		}
		line := bytes.TrimSpace(pp.partial)
		pp.partial = pp.partial[:0]
		pp.lineLocked(line)
	}
}

// lineLocked hands a whole line to the outstanding job. pp.mu is held.
func (pp *persistentProc) lineLocked(line []byte) {
	if len(line) == 0 {
		return // blank lines mean nothing
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil || m == nil {
		pp.violateLocked("not a JSON object: " + abbreviate(line))
		return
	}
	_, done := m["done"]
	j := pp.cur
	if j == nil {
		what := "a line with no job outstanding: "
		if done {
			what = "a done line with no job outstanding: "
		}
		pp.violateLocked(what + abbreviate(line))
		return
	}
	j.pushLocked(pline{line: append([]byte(nil), line...), done: done})
	if done {
		pp.cur = nil
	}
}

// violateLocked records that the process broke the protocol. The
// outstanding job, if any, fails with it and its supervisor replaces the
// process; between jobs the process is killed here. pp.mu is held.
func (pp *persistentProc) violateLocked(what string) {
	pp.broken = what
	pp.partial = nil
	if j := pp.cur; j != nil {
		pp.cur = nil
		j.pushLocked(pline{violation: what})
		return
	}
	logger := *pp.p.lineLog.Load()
	logger.Warn("persistent handler wrote on its result fd with no job outstanding (after its last done line): killing it; the next job gets a new process",
		"pid", pp.p.pid, "problem", what)
	pp.p.Kill()
}

// pendingLocked reports whether the process has written result-fd bytes
// that belong to no job yet: the start of a line, or bytes still in the
// pipe. pp.mu is held.
func (pp *persistentProc) pendingLocked() bool {
	if len(pp.partial) > 0 || pp.long {
		return true
	}
	rc, err := pp.p.results.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	if err := rc.Control(func(fd uintptr) { n = unreadBytes(fd) }); err != nil {
		return false // closed: the reader is done, the process is gone
	}
	return n > 0
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

// pline is a result-fd line of a job, or the violation that ends it.
type pline struct {
	line      []byte
	done      bool
	violation string
}

// pjob is one job in a persistent process.
type pjob struct {
	// pp is the process that has the job: the one it was sent to, or
	// the fresh one it was sent to after the first exited without
	// reading a byte of it.
	pp    atomic.Pointer[persistentProc]
	class string
	start time.Time

	// Result-fd lines wait here, under pp.mu, for the job's supervisor;
	// the reader never blocks on a job (a process that died with lines
	// unread must still be reaped).
	lines  []pline
	queued int
	ready  chan struct{} // a line was queued

	stop   chan stopReason // Stop, Kill
	done   chan struct{}
	result *Result
	err    error
}

// pushLocked queues l for the job. pp.mu is held.
func (j *pjob) pushLocked(l pline) {
	final := l.done || l.violation != ""
	if !final && j.queued+len(l.line) > maxQueued {
		return
	}
	j.lines = append(j.lines, l)
	j.queued += len(l.line)
	select {
	case j.ready <- struct{}{}:
	default:
	}
}

// pop returns the job's next line from pp, if any.
func (j *pjob) pop(pp *persistentProc) (pline, bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if len(j.lines) == 0 {
		return pline{}, false
	}
	l := j.lines[0]
	j.lines = j.lines[1:]
	j.queued -= len(l.line)
	return l, true
}

// run sends job to the process and supervises it. It reports sent false,
// without sending, when the process is gone or broke the protocol between
// jobs; for a fresh process the job then fails, and otherwise the caller
// tries a fresh process.
func (pp *persistentProc) run(ctx context.Context, job Job, fresh bool) (*pjob, bool) {
	logger := job.Logger
	if logger == nil {
		logger = pp.slot.r.logger.With("class", job.Class)
	}
	j := &pjob{class: job.Class, start: time.Now(), ready: make(chan struct{}, 1), stop: make(chan stopReason, 1), done: make(chan struct{})}
	j.pp.Store(pp)
	line, err := json.Marshal(struct {
		ID    string          `json:"id"`
		Queue string          `json:"queue"`
		Class string          `json:"class"`
		Args  json.RawMessage `json:"args"`
	}{job.ID, job.Queue, job.Class, argsOrEmpty(job.Args)})
	if err != nil {
		j.err = fmt.Errorf("encode job for persistent handler: %w", err)
		j.result = &Result{}
		close(j.done)
		return j, true
	}
	broken, sent := pp.dispatch(j, logger)
	if !sent && !fresh {
		return nil, false
	}
	if !sent {
		go func() {
			defer close(j.done)
			j.result = &Result{Duration: time.Since(j.start), StderrTail: pp.p.tail.snapshot()}
			if broken != "" {
				j.err = j.broken(pp, broken)
			} else {
				j.err = j.exitError(pp.p, true)
			}
		}()
		return j, false
	}
	go j.supervise(ctx, job, append(line, '\n'), logger, fresh)
	return j, true
}

// dispatch makes j the outstanding job, unless the process is gone or has
// written result-fd bytes since its last job ended (those belong to no
// job, and must not be taken for j's). Then it returns how the process
// broke the protocol ("" if it exited) and sent false.
func (pp *persistentProc) dispatch(j *pjob, logger hclog.Logger) (broken string, sent bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.broken == "" && pp.pendingLocked() {
		pp.violateLocked("output with no job outstanding, still unread when the next job came")
	}
	if pp.broken != "" || pp.p.leaderExited() {
		return pp.broken, false
	}
	pp.p.lineLog.Store(&logger)
	pp.p.tail.reset()
	pp.cur = j
	pp.busy = true
	return "", true
}

// release ends a job's use of the process; the stdin of a process that
// is gone is closed.
func (pp *persistentProc) release() {
	pp.mu.Lock()
	pp.busy = false
	gone := pp.dead()
	if gone {
		pp.cur = nil // its reader is done: nothing more comes for the job
	}
	pp.mu.Unlock()
	if gone {
		pp.p.stdin.Close()
	}
}

// wrote is the outcome of writing a job line to stdin: the line's offset
// in the stream of bytes written to the pipe, and what the write returned.
type wrote struct {
	start int64
	n     int
	err   error
}

// write writes line to stdin without blocking the caller: a process that
// does not read is caught by the timeout or a stop like any other. stdin
// is non-blocking (on the runtime's poller), so a write to a process that
// is gone fails with EPIPE, and a close of stdin ends a write that waits.
func (pp *persistentProc) write(line []byte) <-chan wrote {
	c := make(chan wrote, 1)
	go func() {
		pp.wmu.Lock()
		w := wrote{start: pp.written}
		w.n, w.err = pp.p.stdin.Write(line)
		pp.written += int64(w.n)
		pp.wmu.Unlock()
		if w.err != nil {
			pp.p.logger.Debug("write job to persistent handler", "error", w.err, "written", w.n, "of", len(line))
		}
		c <- w
	}()
	return c
}

// neverRead reports whether the process, which has exited, provably never
// read a byte of the job line whose write reports to c: the write failed
// with EPIPE before writing anything (the reader was gone), or every byte
// it put into the pipe is still there with no reader left to take it.
// Whenever it cannot tell (a write still under way, a reader still open,
// not Linux) it reports false.
func (pp *persistentProc) neverRead(c <-chan wrote) bool {
	var w wrote
	t := time.NewTimer(pp.p.termTimeout)
	defer t.Stop()
	select {
	case w = <-c:
	case <-t.C:
		return false // the write still waits: someone still holds the read end
	}
	if !pp.wmu.TryLock() {
		return false // another write is under way: written is not final
	}
	defer pp.wmu.Unlock()
	if w.n == 0 && errors.Is(w.err, syscall.EPIPE) {
		return true
	}
	rc, err := pp.p.stdin.SyscallConn()
	if err != nil {
		return false
	}
	n, ok := 0, false
	if rc.Control(func(fd uintptr) { n, ok = orphanedBytes(fd) }) != nil || !ok {
		return false
	}
	// The pipe holds the last n bytes written; the line's bytes are the
	// last written-start. All of them still there: not one was read.
	return int64(n) >= pp.written-w.start
}

func argsOrEmpty(a []byte) json.RawMessage {
	if len(a) == 0 {
		return json.RawMessage("[]")
	}
	return a
}

func (j *pjob) Pid() int { return j.pp.Load().p.pid }
func (j *pjob) Stop()    { j.send(stopRequested) }
func (j *pjob) Kill()    { j.send(stopRequested); j.pp.Load().p.Kill() }
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
// the process's death, a stop, or the timeout. The job is never sent to
// another process once it may have run: only if the process exits having
// provably never read a byte of it, and was not started for it, does a
// fresh process get it.
func (j *pjob) supervise(ctx context.Context, job Job, line []byte, logger hclog.Logger, fresh bool) {
	defer close(j.done)
	pp := j.pp.Load()
	defer func() { pp.release() }()
	var report Report
	finish := func(err error) {
		j.result = &Result{Duration: time.Since(j.start), StderrTail: pp.p.tail.snapshot(), Report: report}
		j.err = err
	}
	sent := pp.write(line)
	var timeout <-chan time.Time
	if t := pp.slot.r.timeout; t > 0 {
		tm := time.NewTimer(t)
		defer tm.Stop()
		timeout = tm.C
	}
	rr := &reportReader{onProgress: job.OnProgress, logger: *pp.p.lineLog.Load()}
	kill := func(reason stopReason) error {
		pp.slot.forget(pp)
		pp.p.stop(reason)
		<-pp.p.done
		ee := j.exitError(pp.p, false)
		ee.TimedOut, ee.Stopped = reason == timedOut, reason == stopRequested
		if ee.TimedOut {
			ee.Timeout = pp.slot.r.timeout
		}
		return ee
	}
	heard := false // a line of the job was read
	for {
		l, ok := j.pop(pp)
		if !ok {
			select {
			case <-j.ready:
				continue
			case <-pp.p.done:
				if l, ok = j.pop(pp); !ok { // lines written just before dying count
					pp.slot.forget(pp)
					if fresh || heard || ctx.Err() != nil || len(j.stop) > 0 || !pp.neverRead(sent) {
						finish(j.exitError(pp.p, true))
						return
					}
					next, err := j.resend(job, pp, logger)
					if next != nil {
						logger.Debug("persistent handler exited without reading the job: a fresh process takes it",
							"pid", pp.p.pid, "new_pid", next.p.pid)
						pp.release()
						pp, fresh = next, true
					}
					if err != nil {
						finish(err)
						return
					}
					sent = pp.write(line)
					rr.logger = *pp.p.lineLog.Load()
					continue
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
		heard = true
		if l.violation != "" {
			finish(j.broken(pp, l.violation))
			return
		}
		rr.line(l.line)
		report = rr.get()
		if !l.done {
			continue
		}
		var m struct{ Done json.RawMessage }
		_ = json.Unmarshal(l.line, &m)
		var outcome string
		_ = json.Unmarshal(m.Done, &outcome)
		pp.jobs++
		pp.maybeRecycle()
		if outcome == "ok" {
			report.Failure = nil
			finish(nil)
		} else {
			finish(&ExitError{Class: j.class, Code: 1, Reported: true, Duration: time.Since(j.start), StderrTail: pp.p.tail.snapshot()})
		}
		return
	}
}

// resend makes j the job of a fresh process for the handler of old, which
// exited without reading it, and returns that process (nil if none
// started). The error, if any, is the job's: the process did not start,
// or did not last until the job was handed to it.
func (j *pjob) resend(job Job, old *persistentProc, logger hclog.Logger) (*persistentProc, error) {
	pp, _, err := old.slot.proc(job, old.path)
	if err != nil {
		return nil, err
	}
	j.pp.Store(pp)
	broken, sent := pp.dispatch(j, logger)
	switch {
	case sent:
		return pp, nil
	case broken != "":
		return pp, j.broken(pp, broken)
	default:
		return pp, j.exitError(pp.p, true)
	}
}

// exitError describes the death of the process before the job's done
// line. Unprompted (not stopped by resqued), an exit with any status is
// reported as Exited: the process left before reporting done.
func (j *pjob) exitError(p *Process, unprompted bool) *ExitError {
	<-p.done
	ee := &ExitError{Class: j.class, Code: -1, Duration: time.Since(j.start), StderrTail: p.tail.snapshot()}
	var pe *ExitError
	switch {
	case errors.As(p.err, &pe):
		ee.Code, ee.Signal = pe.Code, pe.Signal
		ee.Exited = unprompted && pe.Signal == 0
	case p.err == nil:
		ee.Code = 0 // exited cleanly, but mid-job: still a failure
		ee.Exited = true
	}
	return ee
}

// broken fails the job for a protocol violation and replaces the process.
func (j *pjob) broken(pp *persistentProc, what string) error {
	p := pp.p
	pp.slot.forget(pp)
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

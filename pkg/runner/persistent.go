package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

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

// isDoneOK reports whether line is the common end of a successful job,
// {"done":"ok"} as compiled handlers and Python's json.dumps write it,
// which needs no JSON parsing to be understood.
func isDoneOK(line []byte) bool {
	s := string(line) // no allocation: compared only
	return s == `{"done":"ok"}` || s == `{"done": "ok"}`
}

// lineLocked hands a whole line to the outstanding job. pp.mu is held.
func (pp *persistentProc) lineLocked(line []byte) {
	if len(line) == 0 {
		return // blank lines mean nothing
	}
	ok := isDoneOK(line)
	done := ok
	if !done {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil || m == nil {
			pp.violateLocked("not a JSON object: " + abbreviate(line))
			return
		}
		_, done = m["done"]
	}
	j := pp.cur
	if j == nil {
		what := "a line with no job outstanding: "
		if done {
			what = "a done line with no job outstanding: "
		}
		pp.violateLocked(what + abbreviate(line))
		return
	}
	j.pushLocked(pline{line: append([]byte(nil), line...), done: done, ok: ok})
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
	// The process's environment is fixed, so the job's trace context
	// (TRACEPARENT, TRACESTATE in job.Env) travels on its line.
	line, err := json.Marshal(struct {
		ID          string          `json:"id"`
		Queue       string          `json:"queue"`
		Class       string          `json:"class"`
		Args        json.RawMessage `json:"args"`
		Traceparent string          `json:"traceparent,omitempty"`
		Tracestate  string          `json:"tracestate,omitempty"`
	}{job.ID, job.Queue, job.Class, argsOrEmpty(job.Args), envValue(job.Env, "TRACEPARENT"), envValue(job.Env, "TRACESTATE")})
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
			j.result = &Result{Duration: time.Since(j.start), StderrTail: pp.p.tail.snapshot(), StdoutTail: pp.p.outTail.snapshot()}
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
	pp.p.outTail.reset()
	pp.p.output.reset() // the output limit is per job
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

// envValue is the value of the last name=value entry of env, or "".
func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

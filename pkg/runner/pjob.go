package runner

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// pline is a result-fd line of a job, or the violation that ends it.
type pline struct {
	line      []byte
	done      bool
	ok        bool // the line is a plain {"done":"ok"} (isDoneOK)
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

func argsOrEmpty(a []byte) json.RawMessage {
	if len(a) == 0 {
		return json.RawMessage("[]")
	}
	return a
}

func (j *pjob) Pid() int { return j.pp.Load().p.pid }

func (j *pjob) Stop() { j.send(stopRequested) }

func (j *pjob) Kill() { j.send(stopRequested); j.pp.Load().p.Kill() }

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
		j.result = &Result{Duration: time.Since(j.start), StderrTail: pp.p.tail.snapshot(), StdoutTail: pp.p.outTail.snapshot(), Report: report}
		j.err = err
	}
	sent := pp.write(line)
	var timeout <-chan time.Time
	jobTimeout := pp.slot.r.timeoutFor(job)
	if t := jobTimeout; t > 0 {
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
			ee.Timeout = jobTimeout
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
					if fresh || heard || ctx.Err() != nil || len(j.stop) > 0 || pp.p.overLimit() || !pp.neverRead(sent) {
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
		var outcome string
		if l.ok {
			// Nothing in it for the report: a plain success.
			outcome, report = "ok", rr.get()
		} else {
			rr.line(l.line)
			report = rr.get()
			if !l.done {
				continue
			}
			var m struct{ Done json.RawMessage }
			_ = json.Unmarshal(l.line, &m)
			_ = json.Unmarshal(m.Done, &outcome)
		}
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
		ee.Limit, ee.LimitMax, ee.LimitSeen, ee.InForce = pe.Limit, pe.LimitMax, pe.LimitSeen, pe.InForce
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

package runner

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
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

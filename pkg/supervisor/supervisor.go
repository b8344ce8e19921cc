// Package supervisor runs COUNT worker processes and keeps them running.
//
// Each worker is a process of its own, so each has its own pid in its
// Resque worker id (host:pid:queues) and its own process title. That is
// what Ruby Resque's same-host pruning checks: it unregisters every worker
// of this host whose pid is not a live process titled like a Resque
// worker. The supervisor's own title deliberately does not match.
//
// The supervisor forwards the Resque signals to every worker, replaces a
// worker that dies unexpectedly (after recording its in-flight job as
// failed and unregistering it), and exits once every worker has exited.
// It never touches Redis except to clean up after a dead worker.
package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// EnvParentPID is set in each worker's environment to the supervisor's
// pid: it tells the process to run as one supervised worker.
const EnvParentPID = "RESQUED_SUPERVISOR_PID"

// EnvLeaseToken is set in each worker's environment to the token of its
// worker-id lease (queue.Lease), new for every process started: after the
// worker died, Reap cleans up under that lease and no other, so a live
// process elsewhere that happens to share the id is never touched.
const EnvLeaseToken = "RESQUED_LEASE_TOKEN"

// EnvTitleRoom is the first variable of each worker's environment: its
// value is TitleRoomSize spaces, there only to make room for the process
// title. A title (gspt, cmd/resqued/proctitle.go) can only overwrite the
// memory the kernel laid out for the process's argv and, right after it,
// its first environment string (gspt's spt_init2 measures argv plus
// environ[0]; it moves nothing), and at most 255 bytes of it. A worker
// started with a short command line and a short first variable got
// "resqued resque-1.2.3: Processing default sin": this variable, first in
// the environment, gives every worker room for a whole title whatever it
// was started with. The worker drops it from its environment at once, so
// handlers never see it.
const EnvTitleRoom = "RESQUED_TITLE_ROOM"

// TitleRoomSize is the length of EnvTitleRoom's value: with argv[0] in
// front of it, more than gspt's 255-byte limit for a title.
const TitleRoomSize = 256

// TitleRoom returns env with a fresh EnvTitleRoom entry first, where it
// must be to count, and any other EnvTitleRoom entry removed.
func TitleRoom(env []string) []string {
	out := make([]string, 0, len(env)+1)
	out = append(out, EnvTitleRoom+"="+strings.Repeat(" ", TitleRoomSize))
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvTitleRoom+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// Config configures a Supervisor. Zero values get the documented defaults.
type Config struct {
	// Count is the number of worker processes. Required, at least 1.
	Count int
	// Path and Args start one worker process (Args excludes argv[0]).
	// Env is its environment; nil means os.Environ(). EnvTitleRoom is
	// put first, EnvParentPID and EnvLeaseToken are added.
	Path string
	Args []string
	Env  []string
	// Reap is called, with the dead process's pid, after a worker exited
	// without being asked to, before it is replaced: it should record the
	// worker's in-flight job and unregister it, under lease token (the
	// worker's EnvLeaseToken). Nil means nothing.
	Reap func(ctx context.Context, pid int, token string) error
	// MinRestartDelay is the pause before replacing a worker that died.
	// It doubles, up to a minute, while workers keep dying within 10 s of
	// starting. Zero means 1s.
	MinRestartDelay time.Duration
	Logger          hclog.Logger
	// SetTitle sets the supervisor's process title.
	SetTitle func(string)
}

// Supervisor runs Count worker processes.
type Supervisor struct {
	cfg Config
	log hclog.Logger

	mu       sync.Mutex
	children map[int]*exec.Cmd // by pid
	stopping bool
	exited   chan exit
}

type exit struct {
	slot  int
	pid   int
	token string
	err   error
	after time.Duration
}

// New checks cfg and returns a Supervisor.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Count < 1 {
		return nil, fmt.Errorf("new supervisor: count %d: want at least 1", cfg.Count)
	}
	if cfg.Path == "" {
		return nil, errors.New("new supervisor: no worker command")
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.MinRestartDelay == 0 {
		cfg.MinRestartDelay = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.SetTitle == nil {
		cfg.SetTitle = func(string) {}
	}
	return &Supervisor{cfg: cfg, log: cfg.Logger, children: map[int]*exec.Cmd{}, exited: make(chan exit, cfg.Count)}, nil
}

// Signal forwards sig to every worker. QUIT, TERM and INT also mean the
// supervisor is shutting down: workers that exit are no longer replaced.
func (s *Supervisor) Signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch sig {
	case syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGINT:
		s.stopping = true
	}
	for pid, c := range s.children {
		if err := c.Process.Signal(sig); err != nil {
			s.log.Debug("forward signal", "signal", sig, "pid", pid, "error", err)
		}
	}
}

// Run starts the workers and supervises them until every worker has
// exited after a shutdown signal (or on its own with status 0, as when
// INTERVAL=0 drains the queues). Cancelling ctx acts as QUIT.
func (s *Supervisor) Run(ctx context.Context) error {
	s.cfg.SetTitle(fmt.Sprintf("resqued supervisor of %d workers", s.cfg.Count))
	for slot := 0; slot < s.cfg.Count; slot++ {
		if err := s.start(slot); err != nil {
			s.Signal(syscall.SIGQUIT)
			s.waitAll()
			return err
		}
	}
	quit := ctx.Done()
	// Each slot has its own restart delay, and a dead worker is reaped
	// at once: one slot's crash loop never holds up another's cleanup
	// (a job that kills every worker it runs on is failed after a few
	// redeliveries, which needs its deaths reaped promptly).
	delays := make([]time.Duration, s.cfg.Count)
	restart := make(chan int, s.cfg.Count)
	var timers sync.WaitGroup
	defer timers.Wait()
	// alive counts workers that are running or about to be replaced.
	for alive := s.cfg.Count; alive > 0; {
		var e exit
		select {
		case <-quit:
			quit = nil
			s.Signal(syscall.SIGQUIT)
			continue
		case slot := <-restart:
			if slot < 0 {
				alive--
			} else if err := s.start(slot); err != nil {
				s.log.Error("restart worker", "slot", slot, "error", err)
				alive--
			}
			continue
		case e = <-s.exited:
		}
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		log := s.log.With("pid", e.pid, "slot", e.slot)
		if e.err == nil {
			log.Info("worker exited", "status", describe(e.err))
			alive--
			continue
		}
		var ee *exec.ExitError
		if errors.As(e.err, &ee) && ee.ExitCode() == 2 {
			// Status 2 is a usage error: a replacement would fail the
			// same way, forever.
			log.Error("worker refused its configuration; shutting down", "status", describe(e.err))
			s.Signal(syscall.SIGQUIT)
			alive--
			continue
		}
		if stopping {
			log.Warn("worker died while shutting down", "status", describe(e.err))
		} else {
			log.Error("worker died; replacing it", "status", describe(e.err), "after", e.after.Round(time.Millisecond))
		}
		if s.cfg.Reap != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := s.cfg.Reap(rctx, e.pid, e.token); err != nil {
				log.Error("clean up after dead worker", "error", err)
			}
			cancel()
		}
		if stopping {
			alive--
			continue
		}
		d := delays[e.slot]
		if d == 0 || e.after > 10*time.Second {
			d = s.cfg.MinRestartDelay
		}
		delays[e.slot] = min(2*d, time.Minute)
		timers.Add(1)
		go func(slot int) {
			defer timers.Done()
			if s.sleep(ctx, d) {
				restart <- slot
			} else {
				restart <- -1 // shutting down: not replaced
			}
		}(e.slot)
	}
	return nil
}

// sleep waits d unless a shutdown begins; it reports whether to go on.
func (s *Supervisor) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			return !s.stopping
		case <-tick.C:
			s.mu.Lock()
			stopping := s.stopping
			s.mu.Unlock()
			if stopping {
				return false
			}
		}
	}
}

// PIDs returns the process ids of the workers running now.
func (s *Supervisor) PIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids := make([]int, 0, len(s.children))
	for pid := range s.children {
		pids = append(pids, pid)
	}
	return pids
}

func (s *Supervisor) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.children)
}

func (s *Supervisor) start(slot int) error {
	cmd := exec.Command(s.cfg.Path, s.cfg.Args...)
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	cmd.Env = append(TitleRoom(s.cfg.Env), EnvParentPID+"="+strconv.Itoa(os.Getpid()), EnvLeaseToken+"="+token)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	// Its own process group: a terminal's Ctrl-C reaches the supervisor
	// alone, which forwards it once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return errors.New("start worker: shutting down")
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	pid := cmd.Process.Pid
	s.children[pid] = cmd
	s.log.Info("worker started", "pid", pid, "slot", slot)
	began := time.Now()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		delete(s.children, pid)
		s.mu.Unlock()
		s.exited <- exit{slot: slot, pid: pid, token: token, err: err, after: time.Since(began)}
	}()
	return nil
}

func (s *Supervisor) waitAll() {
	for s.running() > 0 {
		<-s.exited
	}
}

func describe(err error) string {
	if err == nil {
		return "exit 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + unix.SignalName(ws.Signal())
		}
		return "exit " + strconv.Itoa(ee.ExitCode())
	}
	return err.Error()
}

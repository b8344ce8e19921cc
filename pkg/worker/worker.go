package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/pkg/handlerconfig"
	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/metrics"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/retry"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/status"
)

// Config configures a Worker. Zero values get the documented defaults.
type Config struct {
	// Queue, Status and Runner are required.
	Queue  *queue.Client
	Status *status.Tracker
	Runner *runner.Runner

	// Queues are the queue specifications in priority order: names,
	// "*", globs and "!exclusions" (see queue.ExpandQueues). Required.
	Queues []string

	// Interval is the longest a worker waits for a job before looking
	// at the queue list again (new queues under "*", the pause flag).
	// Jobs are picked up as soon as they are pushed: the wait is a
	// blocking pop. Zero means 5s. Negative means drain: take jobs until
	// every queue is empty, then return (Resque's INTERVAL=0).
	Interval time.Duration

	// HeartbeatInterval is how often the heartbeat is written. Zero
	// means 60s, Ruby Resque's.
	HeartbeatInterval time.Duration

	// Hostname and PID make the worker id. Zero means this process's.
	Hostname string
	PID      int

	// Logger receives the worker's log lines. Nil means none.
	Logger hclog.Logger

	// PruneInterval is how often the worker looks for dead workers to
	// unregister, besides once at start. Zero means 5 × HeartbeatInterval
	// (Ruby's prune_interval); negative means only at start.
	PruneInterval time.Duration

	// OnlyKnownClasses makes the worker take only jobs whose class has a
	// handler, leaving others at the head of their queue for the workers
	// (Ruby, PHP) that own them. See docs/reliability.md.
	OnlyKnownClasses bool

	// MaxJobsPerProcess recycles a persistent handler process after that
	// many jobs; zero means 1000. MaxRSSPerProcess recycles it once its
	// resident memory passes that many bytes; zero means no limit.
	MaxJobsPerProcess int
	MaxRSSPerProcess  int64

	// Classes holds what the handlers config file says of each class
	// (handlerconfig.Config.Jobs): its jobs' limits, timeout and
	// environment. A class it does not hold gets the runner's.
	Classes map[string]handlerconfig.Job

	// Limits are the concurrency and rate limits of classes across every
	// worker that shares the Redis (handlerconfig.Config.Limits); nil
	// means none, at no cost per job.
	Limits *queue.Limits

	// Retry holds the retry policies. A class with none (or a nil
	// Retry) gets retry.TempFailPolicy: exit 75 is retried, 5 runs in
	// all, unless the payload's "retry" field says otherwise.
	Retry *retry.Config

	// KeepOutput, when positive, keeps the last lines of each job's
	// stdout and stderr (the runner's tails: set runner.Config.StdoutTail)
	// in Redis for that long (queue.KeepOutput); zero keeps none.
	// KeepOutputFailuresOnly keeps only failed (and retried) jobs'.
	// KeepOutputMaxJobs caps how many jobs' output is kept; zero means
	// queue.DefaultOutputMaxJobs.
	KeepOutput             time.Duration
	KeepOutputFailuresOnly bool
	KeepOutputMaxJobs      int

	// MaxPayload is the largest payload, in bytes, the worker runs;
	// bigger ones fail as Resqued::InvalidPayload (kept whole in the
	// failure record). Zero means 16 MiB; negative means no limit.
	MaxPayload int

	// OnOrphan is what happens to the in-flight job of a dead worker
	// this worker prunes: "requeue" (zero value) or "fail".
	OnOrphan string

	// ParentPID, when set, makes the worker shut down as on QUIT once
	// its parent process is gone (a supervisor killed with -9), instead
	// of living on unsupervised.
	ParentPID int

	// SetTitle, when set, is told what the worker is doing, in Resque's
	// words ("Waiting for a,b", "Processing q since 1795769182 [C]",
	// "Paused").
	SetTitle func(string)

	// OnRegistered, when set, is called once the worker is registered
	// in Redis and about to take jobs: the daemon says it is ready then.
	OnRegistered func(id string)

	// Jobs, when set, times each job by class and outcome (pkg/metrics);
	// nil means no metrics.
	Jobs *metrics.Jobs

	// History, when set, counts each job and the worker's state
	// (busy, idle, paused) into the dashboard's history (pkg/history),
	// flushed every HistoryInterval; false records none.
	History bool
	// HistoryInterval is how often history is flushed. Zero means
	// history.DefaultInterval.
	HistoryInterval time.Duration

	// LeaseTTL is how long the worker's claim on its id (queue.Lease)
	// lasts unless renewed. Every reserve and outcome script renews it;
	// an idle worker sends a reserve once half of it passed, and the
	// worker renews it itself only after three quarters passed without
	// one (a long job, a long INTERVAL). A worker killed with -9 is
	// pruned by others once it has run out. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// LeaseToken is the lease's token, chosen by a supervisor so that it
	// can clean up after this worker; empty means a random one.
	LeaseToken string

	// MaxRedeliveries is how often a job may be requeued from workers
	// that died running it before it fails as Resque::DirtyExit. Zero
	// means 3; negative means no limit.
	MaxRedeliveries int
}

// DefaultLeaseTTL is the worker-id lease's lifetime. Long enough that
// an idle worker's own waits (INTERVAL, 5 s by default, then a reserve)
// renew it with no command of their own, short enough that a worker
// killed with -9 is recovered within seconds.
const DefaultLeaseTTL = 15 * time.Second

// Worker is one Resque worker. Create it with New and start it with Run.
type Worker struct {
	cfg Config
	id  string
	log hclog.Logger

	pruner *Pruner
	lease  *queue.Lease
	fetch  *queue.Fetcher // the lease's; loop goroutine only
	paused bool           // the paused marker is in worker:<id>; loop goroutine only
	// expanded is the queue list last read, at expandedAt (loop only).
	expanded   []string
	expandedAt time.Time
	// classes are the handler classes last listed, at classesAt (loop only).
	classes   []string
	classesAt time.Time
	// reservedAt is when the loop last sent a reserve of its own.
	reservedAt time.Time
	// unique is the holder token under which the current job holds its
	// unique lock (unique.go), or "" (loop only).
	unique string

	mu      sync.Mutex
	state   state
	wake    chan struct{} // closed and replaced whenever state changes
	slot    *runner.Slot
	current runner.Running
	inJob   bool   // between taking a job and recording its outcome
	killed  string // why the current job was stopped, if it was
	force   bool   // the stop must be a KILL
	// cancels waits for cancel requests while a job runs (cancel.go);
	// cancelled is the one that stopped the current job, if one did.
	cancels   *queue.CancelWatcher
	cancelled *queue.CancelRequest
	// history counts jobs and states for the dashboard; nil: none.
	history *history.Recorder
}

type state struct {
	quit, term, paused bool
}

// New checks cfg and returns a Worker.
func New(cfg Config) (*Worker, error) {
	if cfg.Queue == nil || cfg.Status == nil || cfg.Runner == nil {
		return nil, errors.New("new worker: Queue, Status and Runner are required")
	}
	if len(cfg.Queues) == 0 {
		return nil, errors.New("new worker: no queues given")
	}
	for _, q := range cfg.Queues {
		if q == "" {
			return nil, errors.New("new worker: empty queue name in list")
		}
		if !queue.IsPattern(q) {
			if err := queue.ValidateQueueName(q); err != nil {
				return nil, fmt.Errorf("new worker: %w", err)
			}
		}
	}
	switch cfg.OnOrphan {
	case "", "requeue", "fail":
	default:
		return nil, fmt.Errorf("new worker: on-orphan %q: want requeue or fail", cfg.OnOrphan)
	}
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = 16 << 20
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 60 * time.Second
	}
	if cfg.PruneInterval == 0 {
		cfg.PruneInterval = 5 * cfg.HeartbeatInterval
	}
	if cfg.Hostname == "" {
		cfg.Hostname = queue.Hostname()
	}
	if cfg.PID == 0 {
		cfg.PID = os.Getpid()
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.SetTitle == nil {
		cfg.SetTitle = func(string) {}
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	w := &Worker{cfg: cfg, wake: make(chan struct{})}
	w.slot = cfg.Runner.NewSlot(runner.SlotConfig{MaxJobs: cfg.MaxJobsPerProcess, MaxRSS: cfg.MaxRSSPerProcess})
	w.id = queue.WorkerID(cfg.Hostname, cfg.PID, cfg.Queues)
	w.log = cfg.Logger.With("worker", w.id)
	w.pruner = &Pruner{Queue: cfg.Queue, Self: w.id, Hostname: cfg.Hostname, Queues: cfg.Queues,
		Expiry: 5 * cfg.HeartbeatInterval, OnOrphan: cfg.OnOrphan, MaxRedeliveries: cfg.MaxRedeliveries, Classes: cfg.Classes, Logger: w.log}
	w.lease = cfg.Queue.NewLease(w.id, cfg.LeaseToken, cfg.LeaseTTL)
	w.fetch = w.lease.Fetcher()
	w.cancels = cfg.Queue.CancelWatcher(w.id)
	if cfg.History {
		w.history = history.NewRecorder(history.Config{Queue: cfg.Queue, Worker: w.id,
			Interval: cfg.HistoryInterval, Logger: w.log.Named("history")})
	}
	return w, nil
}

// ID returns the Resque worker id, host:pid:queues.
func (w *Worker) ID() string { return w.id }

// update changes the state under the lock and wakes Run.
func (w *Worker) update(f func(*state)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(&w.state)
	close(w.wake)
	w.wake = make(chan struct{})
}

func (w *Worker) snapshot() (state, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state, w.wake
}

// Shutdown asks the worker to finish its running job and exit (QUIT).
func (w *Worker) Shutdown() {
	w.log.Debug("shutdown requested: finishing the running job")
	w.update(func(s *state) { s.quit = true })
}

// Terminate asks the worker to stop its running job and exit (TERM/INT):
// the handler's process group gets SIGTERM, then SIGKILL after the
// runner's grace period.
func (w *Worker) Terminate() {
	w.log.Debug("terminate requested: stopping the running job")
	w.update(func(s *state) { s.quit, s.term = true, true })
	w.stopCurrent("worker shutting down", false)
}

// Force kills the running job's process group at once (a second TERM).
func (w *Worker) Force() {
	w.update(func(s *state) { s.quit, s.term = true, true })
	w.stopCurrent("worker shutting down", true)
}

// KillJob stops the running job, if any, and keeps working (USR1).
func (w *Worker) KillJob() { w.stopCurrent("killed by operator (USR1)", false) }

// Pause lets the running job finish and takes no new ones (USR2).
func (w *Worker) Pause() { w.update(func(s *state) { s.paused = true }) }

// Resume undoes Pause (CONT).
func (w *Worker) Resume() { w.update(func(s *state) { s.paused = false }) }

// stopCurrent stops the running handler. Asked while a job is taken but
// its handler not yet started, it is remembered and applied at start.
func (w *Worker) stopCurrent(why string, now bool) {
	w.mu.Lock()
	p := w.current
	if w.inJob && w.killed == "" {
		w.killed = why
	}
	if w.inJob {
		w.force = w.force || now
	}
	w.mu.Unlock()
	if p == nil {
		return
	}
	if now {
		p.Kill()
	} else {
		p.Stop()
	}
}

// Run registers the worker and processes jobs until Shutdown, Terminate
// or ctx ends (which acts as Shutdown), then unregisters. With a negative
// Interval it returns once every queue is empty.
//
// Shutdown order: stop taking jobs; let the running job finish (or stop
// it, on Terminate); record its outcome; stop the heartbeat; unregister.
// The heartbeat outlives the job so a long job never looks dead, and
// unregistering comes last so that resque-web never shows a running job
// without its worker.
func (w *Worker) Run(ctx context.Context) error {
	runDone := make(chan struct{})
	defer close(runDone)
	go func() {
		select {
		case <-ctx.Done():
			w.Shutdown()
		case <-runDone:
		}
	}()

	// Nothing is in flight yet, so any stop request ends the wait.
	quitting := func(s state) bool { return s.quit }
	if err := w.acquireLease(quitting); err != nil {
		return err
	}
	if err := w.persistUntil(context.Background(), "register worker", quitting, func(ctx context.Context) error {
		// Ruby's order: forget our own (a previous process's) heartbeat,
		// then register; dead workers are pruned right after, in the
		// background.
		if err := w.cfg.Queue.ForgetHeartbeat(ctx, w.id); err != nil {
			return err
		}
		// A previous process with our id (same host and pid, now dead:
		// we hold the lease) may have left a job in worker:<id>, and its
		// handler running: recover both before we reuse the key.
		if raw, err := w.cfg.Queue.InFlight(ctx, w.id); err != nil {
			return err
		} else if raw != nil {
			if _, err := w.pruner.PruneOne(ctx, w.id, false, w.lease.Token); err != nil {
				return err
			}
			if _, err := w.lease.Acquire(ctx); err != nil {
				return err
			}
		}
		return w.cfg.Queue.RegisterWorker(ctx, w.id, time.Now())
	}); err != nil {
		return err
	}
	w.log.Info("worker started", "queues", strings.Join(w.cfg.Queues, ","))
	if w.cfg.OnRegistered != nil {
		w.cfg.OnRegistered(w.id)
	}

	hbCtx, stopHeartbeat := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.heartbeat(hbCtx) }()
	if w.cfg.ParentPID != 0 {
		wg.Add(1)
		go func() { defer wg.Done(); w.watchParent(hbCtx) }()
	}
	if w.history != nil {
		// Stopped with the heartbeat, after the last job's outcome: its
		// last flush holds it.
		wg.Add(1)
		go func() { defer wg.Done(); w.history.Run(hbCtx) }()
	}

	err := w.loop()
	_ = w.cancels.Close()
	// Persistent handlers get EOF on stdin and the grace period to exit.
	w.slot.Close()

	stopHeartbeat()
	wg.Wait()
	uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	uerr := w.cfg.Queue.UnregisterWorker(uctx, w.id, w.lease.Token)
	if errors.Is(uerr, queue.ErrHoldsJob) {
		// A job whose outcome could not be recorded (Redis was away at a
		// TERM) is still in worker:<id>: hand it to the orphan policy
		// rather than delete it with the rest.
		w.log.Warn("leaving with a job whose outcome was not recorded; applying --on-orphan to it")
		_, uerr = w.pruner.PruneOne(uctx, w.id, false, w.lease.Token)
	}
	if errors.Is(uerr, queue.ErrIDInUse) || errors.Is(err, queue.ErrNotOwner) {
		// Another process holds our id now: what is there is its own.
		uerr = nil
	}
	if uerr != nil {
		// Still registered: pruning (the supervisor's, or the next
		// worker's on this host) recovers whatever it holds.
		w.log.Error("unregister worker", "error", uerr)
		if err == nil {
			err = uerr
		}
	}
	w.log.Info("worker stopped")
	return err
}

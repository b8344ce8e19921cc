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

	"github.com/resqued/resqued/internal/outage"
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

	// Retry holds the retry policies (nil: a job is retried only when
	// its payload's "retry" field asks for it).
	Retry *retry.Config

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

	// LeaseTTL is how long the worker's claim on its id (queue.Lease)
	// lasts unless renewed; it is renewed every third of it. A worker
	// killed with -9 is pruned by others once it has run out. Zero means
	// 6s.
	LeaseTTL time.Duration
	// LeaseToken is the lease's token, chosen by a supervisor so that it
	// can clean up after this worker; empty means a random one.
	LeaseToken string

	// MaxRedeliveries is how often a job may be requeued from workers
	// that died running it before it fails as Resque::DirtyExit. Zero
	// means 3; negative means no limit.
	MaxRedeliveries int
}

// Worker is one Resque worker. Create it with New and start it with Run.
type Worker struct {
	cfg Config
	id  string
	log hclog.Logger

	pruner *Pruner
	lease  *queue.Lease
	paused bool // the paused marker is in worker:<id>; loop goroutine only
	// expanded is the queue list last read, at expandedAt (loop only).
	expanded   []string
	expandedAt time.Time
	// classes are the handler classes last listed, at classesAt (loop only).
	classes   []string
	classesAt time.Time

	mu      sync.Mutex
	state   state
	wake    chan struct{} // closed and replaced whenever state changes
	slot    *runner.Slot
	current runner.Running
	inJob   bool   // between taking a job and recording its outcome
	killed  string // why the current job was stopped, if it was
	force   bool   // the stop must be a KILL
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
		cfg.LeaseTTL = 6 * time.Second
	}
	w := &Worker{cfg: cfg, wake: make(chan struct{})}
	w.slot = cfg.Runner.NewSlot(runner.SlotConfig{MaxJobs: cfg.MaxJobsPerProcess, MaxRSS: cfg.MaxRSSPerProcess})
	w.id = queue.WorkerID(cfg.Hostname, cfg.PID, cfg.Queues)
	w.log = cfg.Logger.With("worker", w.id)
	w.pruner = &Pruner{Queue: cfg.Queue, Self: w.id, Hostname: cfg.Hostname, Queues: cfg.Queues,
		Expiry: 5 * cfg.HeartbeatInterval, OnOrphan: cfg.OnOrphan, MaxRedeliveries: cfg.MaxRedeliveries, Logger: w.log}
	w.lease = cfg.Queue.NewLease(w.id, cfg.LeaseToken, cfg.LeaseTTL)
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

	err := w.loop()
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

// acquireLease claims the worker id. A lease still held by another
// token is waited out for one lease time: a previous process with this
// id that just died leaves one behind. A lease renewed all that time
// belongs to a live process, and the worker refuses to start.
func (w *Worker) acquireLease(giveUp func(state) bool) error {
	var deadline time.Time
	for {
		var left time.Duration
		err := w.persistUntil(context.Background(), "claim worker id", giveUp, func(ctx context.Context) error {
			var err error
			left, err = w.lease.Acquire(ctx)
			if errors.Is(err, queue.ErrIDInUse) {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		if left == 0 {
			return nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(w.cfg.LeaseTTL + time.Second)
			w.log.Info("worker id held by another process; waiting to see whether it is alive", "lease_left", left)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("worker id %s is held by another live process: two workers share a hostname and pid "+
				"(containers with a fixed hostname, or host networking); give each one its own --hostname (RESQUED_HOSTNAME): %w", w.id, queue.ErrIDInUse)
		}
		s, wake := w.snapshot()
		if giveUp(s) {
			return fmt.Errorf("claim worker id %s: %w", w.id, queue.ErrIDInUse)
		}
		t := time.NewTimer(min(left+50*time.Millisecond, 500*time.Millisecond))
		select {
		case <-t.C:
		case <-wake:
		}
		t.Stop()
	}
}

// heartbeat stamps the heartbeat every HeartbeatInterval, renews the
// lease every third of its TTL (on a goroutine of its own, so that a long
// prune never lets it lapse), and prunes dead workers at start and every
// PruneInterval, until ctx ends. A prune that found workers of this
// host dead but still holding a lease runs again once it has run out.
// While Redis is away it logs one line when the outage starts and one
// when it ends (internal/outage).
func (w *Worker) heartbeat(ctx context.Context) {
	var down outage.Log
	log := w.log.Named("heartbeat")
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	renewed := make(chan struct{})
	go func() { defer close(renewed); w.renewLease(ctx, log, &down) }()
	defer func() { <-renewed }()
	var prune <-chan time.Time
	if w.cfg.PruneInterval > 0 {
		pt := time.NewTicker(w.cfg.PruneInterval)
		defer pt.Stop()
		prune = pt.C
	}
	again := time.NewTimer(0) // the first prune, at start
	defer again.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := w.cfg.Queue.Heartbeat(ctx, w.id); ctx.Err() == nil {
				down.Report(log, wrap("heartbeat", err))
			}
		case <-prune:
			w.prune(ctx, again, log, &down)
		case <-again.C:
			w.prune(ctx, again, log, &down)
		}
	}
}

// renewLease renews the lease every third of its TTL until ctx ends, or
// until another process turns out to hold the id: then the worker stops.
func (w *Worker) renewLease(ctx context.Context, log hclog.Logger, down *outage.Log) {
	t := time.NewTicker(w.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := w.lease.Renew(ctx)
		if errors.Is(err, queue.ErrNotOwner) {
			w.log.Error("another process has taken over this worker's id (this one lost its lease, e.g. while Redis was away or the process was stopped); stopping", "error", err)
			w.Terminate()
			return
		}
		if ctx.Err() == nil {
			down.Report(log, wrap("renew worker lease", err))
		}
	}
}

// prune prunes dead workers, reporting the outcome to down; again is
// reset to when the next prune is due if some dead-looking workers still
// held a lease.
func (w *Worker) prune(ctx context.Context, again *time.Timer, log hclog.Logger, down *outage.Log) {
	pruned, after, err := w.pruner.Prune(ctx)
	if ctx.Err() == nil {
		down.Report(log, wrap("prune dead workers", err))
	}
	if len(pruned) > 0 {
		w.log.Info("pruned dead workers", "count", len(pruned))
	}
	if after > 0 {
		again.Reset(after + 100*time.Millisecond)
	}
}

// watchParent shuts the worker down once its parent has gone: the
// process is then re-parented and Getppid changes.
func (w *Worker) watchParent(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if os.Getppid() != w.cfg.ParentPID {
				w.log.Warn("supervisor is gone: finishing the running job, then exiting", "supervisor_pid", w.cfg.ParentPID)
				w.Shutdown()
				return
			}
		}
	}
}

// markPaused writes or clears the paused marker in worker:<id> when the
// paused state changed. It returns queue.ErrHoldsJob when worker:<id>
// holds a job (taken by a reserve whose reply was lost): the marker
// never replaces a job, which must run first.
func (w *Worker) markPaused(ctx context.Context, paused bool) error {
	if paused == w.paused {
		return nil
	}
	err := w.cfg.Queue.SetPaused(ctx, w.id, strings.Join(w.cfg.Queues, ","), paused, time.Now())
	if errors.Is(err, queue.ErrHoldsJob) {
		return err
	}
	if err != nil {
		w.log.Warn("mark paused", "error", err)
		return nil
	}
	w.paused = paused
	return nil
}

// loop takes and runs jobs until told to quit.
func (w *Worker) loop() error {
	fetch := w.lease.Fetcher()
	defer fetch.Close()
	backoff := newBackoff()
	for {
		s, wake := w.snapshot()
		if s.quit {
			return nil
		}
		// waitCtx is cancelled by any state change, which unblocks a
		// wait for jobs at once.
		waitCtx, cancel := contextUntil(wake)
		// The pause-all-workers flag is checked inside the reserve
		// script (one round trip less per job); only while paused is it
		// read on its own, to notice it being lifted.
		var paused bool
		var err error
		var queues []string
		var r *queue.Reserved
		switch {
		case w.paused && !s.paused:
			paused, err = w.cfg.Queue.PausedAll(waitCtx)
		case !s.paused:
			if queues, err = w.queues(waitCtx, false); err == nil {
				r, err = w.reserve(waitCtx, fetch, queues)
			}
			if errors.Is(err, queue.ErrPausedAll) {
				paused, err = true, nil
			}
		}
		if err == nil && (paused || s.paused) {
			if w.cfg.Interval < 0 {
				// Draining (INTERVAL=0): a paused worker has nothing
				// left to do, as in Ruby Resque.
				cancel()
				return nil
			}
			w.cfg.SetTitle("Paused")
			if !w.paused {
				by := "USR2"
				if paused {
					by = "pause-all-workers flag"
				}
				w.log.Info("paused", "by", by)
			}
			if err := w.markPaused(waitCtx, true); errors.Is(err, queue.ErrHoldsJob) {
				// Taken before the pause (its reply was lost): it runs
				// first, as a running job does.
				cancel()
				if r, err := fetch.Reserve(context.Background(), nil, queue.ReserveOptions{HeldOnly: true}); err == nil {
					w.log.Warn("running the job this worker had taken before a connection was lost, before pausing", "queue", r.Queue)
					w.process(r)
				}
				continue
			}
			sleep(waitCtx, max(w.cfg.Interval, 100*time.Millisecond))
			cancel()
			continue
		}
		if err == nil && w.paused {
			// Lifted: clear the marker before taking anything, since a
			// job would go into the same key.
			w.log.Info("resumed")
			_ = w.markPaused(waitCtx, false)
			cancel()
			continue
		}
		switch {
		case errors.Is(err, queue.ErrNoJob):
			backoff.reset(w.log)
			if w.cfg.Interval < 0 {
				cancel()
				return nil
			}
			w.cfg.SetTitle("Waiting for " + strings.Join(w.cfg.Queues, ","))
			// Idle: re-read the queue list now ("*" may have grown).
			if q, err := w.queues(waitCtx, true); err == nil {
				queues = q
			}
			w.log.Debug("waiting for a job", "queues", strings.Join(queues, ","), "timeout", w.cfg.Interval)
			if len(queues) == 0 {
				sleep(waitCtx, w.cfg.Interval)
			} else if err := fetch.Wait(waitCtx, queues, w.cfg.Interval); err != nil {
				w.log.Debug("wait for jobs", "error", err)
			}
			cancel()
			continue
		case errors.Is(err, queue.ErrNotOwner):
			cancel()
			w.log.Error("another process has taken over this worker's id; stopping without taking more jobs", "error", err)
			return err
		case err != nil:
			cancel()
			backoff.fail(w.log, err)
			backoff.wait(wake)
			continue
		}
		cancel()
		backoff.reset(w.log)
		if s2, _ := w.snapshot(); s2.quit || s2.paused {
			// Taken just as we were told to stop: give it back.
			w.release(r)
			continue
		}
		w.process(r)
	}
}

// reserve takes the next job into worker:<id>, only of a class this
// worker has a handler for when OnlyKnownClasses is set.
func (w *Worker) reserve(ctx context.Context, fetch *queue.Fetcher, queues []string) (*queue.Reserved, error) {
	var opt queue.ReserveOptions
	if w.cfg.OnlyKnownClasses {
		// Listing the handlers directory resolves every file in it: do it
		// at most once a second, not for every job. A handler added
		// meanwhile is taken up within that second.
		if w.classes == nil || time.Since(w.classesAt) >= time.Second {
			classes, err := w.cfg.Runner.Classes()
			if err != nil {
				return nil, fmt.Errorf("list handler classes: %w", err)
			}
			w.classes, w.classesAt = append([]string{}, classes...), time.Now()
		}
		opt.Classes = w.classes
	}
	r, err := fetch.Reserve(ctx, queues, opt)
	if err == nil && r.Resumed {
		w.log.Warn("resuming a job this worker had taken before a connection was lost", "queue", r.Queue)
	}
	return r, err
}

// queues expands the queue specification. With "*" or globs it reads the
// queues set, at most once a second while busy (a busy worker need not
// pay a round trip per job for it), and always when fresh is set.
func (w *Worker) queues(ctx context.Context, fresh bool) ([]string, error) {
	if w.expanded != nil && !fresh && time.Since(w.expandedAt) < time.Second {
		return w.expanded, nil
	}
	var all []string
	for _, s := range w.cfg.Queues {
		if queue.IsPattern(s) {
			var err error
			if all, err = w.cfg.Queue.Queues(ctx); err != nil {
				return nil, err
			}
			break
		}
	}
	w.expanded, w.expandedAt = queue.ExpandQueues(w.cfg.Queues, all), time.Now()
	return w.expanded, nil
}

// release puts a reserved job back at the head of its queue.
func (w *Worker) release(r *queue.Reserved) {
	err := w.persist(context.Background(), "give back job", func(ctx context.Context) error {
		return w.cfg.Queue.Release(ctx, r)
	})
	if err != nil {
		// It stays in worker:<id>; the next start or prune of this id
		// applies the orphan policy to it.
		w.log.Error("could not give back a job; it stays in worker:<id> for recovery", "queue", r.Queue, "error", err)
	}
}

// contextUntil returns a context cancelled when ch is closed.
func contextUntil(ch <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

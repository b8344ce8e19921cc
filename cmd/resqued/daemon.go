package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/delayed"
	"github.com/resqued/resqued/pkg/pidfile"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/recurring"
	"github.com/resqued/resqued/pkg/redisurl"
	"github.com/resqued/resqued/pkg/supervisor"
	"github.com/resqued/resqued/pkg/worker"
)

// The daemon's start-up and shutdown order, in one place. A daemon is
// one of three things: a single worker (COUNT=1), the supervisor of
// COUNT worker processes, or one of those worker processes ("supervised";
// it runs only step 3, 5 and 6). It starts its parts in this order, each
// needing the ones before it:
//
//  1. Title room (COUNT>1): the supervisor execs itself once with room
//     for whole process titles (proctitle.go), before it has done
//     anything an exec would undo.
//  2. Pidfile (--pidfile): before anything touches Redis or a port, so a
//     second daemon on the same file refuses before it does anything.
//  3. Process title: replaces argv at once, so a password in --redis is
//     not left readable in ps.
//  4. Metrics (--metrics): listening before the workers start, so that
//     /healthz answers while they do.
//  5. Workers: the Worker (it registers in Redis when it runs), or the
//     Supervisor; then signals are routed to the Worker's methods or
//     forwarded to the supervisor's children (docs/operations.md). Until
//     then a signal has its default effect: nothing has been taken yet.
//  6. Background loops, once per daemon (the supervisor, not each of its
//     workers): the dashboard (--web), the queue sampler of the
//     dashboard's history (--history), the delayed-job loop (--scheduler)
//     and the recurring schedule (--schedule).
//  7. Run: the worker or supervisor in the foreground, until QUIT, TERM
//     or INT, a drained INTERVAL=0, or its worker id taken over.
//
// Shutdown is the reverse, once Run has returned, and Run has finished
// or stopped the running jobs, recorded them and unregistered (see
// Worker.Run for its own order): the background loops stop (this daemon
// enqueues and moves nothing more), signals go back to their defaults,
// the metrics listener closes (it answered until the last job was
// recorded), and the pidfile goes last, once nothing of the daemon runs.
type daemon struct {
	c          *cli.Context
	cfg        worker.Config
	count      int  // COUNT
	supervised bool // a worker process started by a supervisor
	stops      []func()
}

// onStop adds what undoes a step just taken; stop runs them in reverse.
func (d *daemon) onStop(f func()) { d.stops = append(d.stops, f) }

func (d *daemon) stop() {
	for i := len(d.stops) - 1; i >= 0; i-- {
		d.stops[i]()
	}
}

// run starts the daemon's parts in order, runs it, and stops them.
func (d *daemon) run() error {
	defer d.stop()
	c, cfg := d.c, &d.cfg
	supervise := d.count > 1 && !d.supervised
	if supervise { // 1
		makeTitleRoom()
	}
	// The room has served its purpose (the title uses the memory, not the
	// variable): handlers and the supervisor's workers are not to inherit
	// it from here.
	_ = os.Unsetenv(supervisor.EnvTitleRoom)
	if path := c.String("pidfile"); path != "" && !d.supervised { // 2
		pf, err := pidfile.Acquire(path)
		if err != nil {
			return err
		}
		d.onStop(func() { pf.Release() })
	}
	cfg.Logger.Info("starting", "version", Version, "redis", redisurl.Redacted(redisURL(c)), "namespace", cfg.Queue.Namespace(), "handlers", cfg.Runner.Dir())
	if supervise { // 3
		rawTitleSetter()(fmt.Sprintf("resqued supervisor of %d workers", d.count))
	} else {
		cfg.SetTitle("Starting")
		jobGC(os.Getenv)
	}
	if d.supervised {
		fromSupervisor(cfg, os.Getenv)
	} else { // 4: per-job histograms only where the jobs run
		stopMetrics, err := serveMetrics(c, cfg, !supervise)
		if err != nil {
			return err
		}
		d.onStop(stopMetrics)
	}
	run, ctl, err := d.workers(supervise) // 5
	if err != nil {
		return err
	}
	d.onStop(ctl.listen(cfg.Logger))
	if !d.supervised { // 6
		if err := d.background(); err != nil {
			return err
		}
	}
	return run(c.Context) // 7
}

// workers builds step 5: a Worker, or a Supervisor of d.count of them,
// and the signal routing to it.
func (d *daemon) workers(supervise bool) (run func(context.Context) error, ctl *control, err error) {
	c, cfg := d.c, d.cfg
	if !supervise {
		if !d.supervised {
			cfg.OnRegistered = func(string) { sayReady(cfg, 1, redisURL(c)) }
		}
		w, err := worker.New(cfg)
		if err != nil {
			return nil, nil, &usageError{msg: err.Error(), hint: "resqued --queues high,default"}
		}
		return w.Run, &control{stop: w.Shutdown, term: w.Terminate, force: w.Force, usr1: w.KillJob, pause: w.Pause, resume: w.Resume}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find own executable: %w", err)
	}
	pruner := &worker.Pruner{Queue: cfg.Queue, Hostname: cfg.Hostname, Queues: cfg.Queues, OnOrphan: cfg.OnOrphan,
		MaxRedeliveries: cfg.MaxRedeliveries, Classes: cfg.Classes, Logger: cfg.Logger}
	s, err := supervisor.New(supervisor.Config{
		Count: d.count, Path: exe, Args: os.Args[1:],
		Reap: func(ctx context.Context, pid int, token string) error {
			_, err := pruner.PruneOne(ctx, queue.WorkerID(cfg.Hostname, pid, cfg.Queues), false, token)
			return err
		},
		Logger:   cfg.Logger.ResetNamed("resqued.supervisor"),
		SetTitle: rawTitleSetter(),
	})
	if err != nil {
		return nil, nil, err
	}
	fwd := func(sig syscall.Signal) func() { return func() { s.Signal(sig) } }
	ctl = &control{stop: fwd(syscall.SIGQUIT), term: fwd(syscall.SIGTERM), force: fwd(syscall.SIGTERM),
		usr1: fwd(syscall.SIGUSR1), pause: fwd(syscall.SIGUSR2), resume: fwd(syscall.SIGCONT)}
	run = func(ctx context.Context) error {
		readyCtx, cancelReady := context.WithCancel(ctx)
		defer cancelReady()
		go sayReadyWhenRegistered(readyCtx, cfg, d.count, s.PIDs, redisURL(c))
		return s.Run(ctx)
	}
	return run, ctl, nil
}

// background starts step 6: what a daemon runs besides its workers.
func (d *daemon) background() error {
	c, cfg := d.c, d.cfg
	// The dashboard shows the limits the workers were given (parsed once).
	stopWeb, err := serveDaemonWeb(c, cfg.Queue, cfg.Status, cfg.Limits, cfg.Logger)
	if err != nil {
		return err
	}
	d.onStop(stopWeb)
	if c.Bool("history") {
		d.onStop(startLoop(c.Context, newSampler(cfg.Queue, cfg.Logger.ResetNamed("resqued.history")).Run))
	}
	if c.Bool("scheduler") {
		d.onStop(startLoop(c.Context, delayed.New(cfg.Queue, cfg.Logger.ResetNamed("resqued.scheduler")).Run))
	}
	if path := c.String("schedule"); path != "" {
		sched, err := recurring.Load(path)
		if err != nil {
			return &usageError{msg: err.Error(), hint: "--schedule schedule.yml"}
		}
		log := cfg.Logger.ResetNamed("resqued.schedule")
		d.onStop(startLoop(c.Context, func(ctx context.Context) { sched.Run(ctx, cfg.Queue, log) }))
	}
	return nil
}

// jobGCPercent is the GC target of a process that runs jobs, unless GOGC
// says otherwise. Its live heap is small (under 1 MiB while draining) but
// each job allocates ~20 KB, so with Go's default (GOGC=100, a 4 MiB
// minimum heap goal) the heap fills to 4 MiB between collections and that
// is most of the worker's anonymous RSS. At 50 the goal is 2 MiB: peak
// RSS 2.2 MiB lower, for ~12 µs more GC CPU per job (~2% of the worker's
// CPU per job; `make bench` memory section, issue 14). A bigger live heap
// (large payloads) still gets its goal at 1.5x, not a fixed cap, so the
// GC cannot thrash the way a memory limit could.
const jobGCPercent = 50

// jobGC lowers the GC target of a job-running process (the single worker,
// or a supervised one) unless GOGC is set: the user's setting wins.
func jobGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(jobGCPercent)
	}
}

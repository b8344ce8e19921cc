package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/retry"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/supervisor"
	"github.com/resqued/resqued/pkg/worker"
)

func runFlags() []cli.Flag {
	return append(append(append(append(append(connFlags(), replicaFlags()...), daemonWebFlags()...), limitFlags()...),
		&cli.StringFlag{Name: "handlers", EnvVars: []string{"RESQUED_HANDLERS"}, Value: "./handlers", Usage: "`DIR` holding one executable per job class"},
		&cli.StringFlag{Name: "queues", Aliases: []string{"q"}, EnvVars: []string{"QUEUES", "QUEUE"}, Usage: "queues in priority order, comma-separated; * for all, globs and !exclusions allowed"},
		&cli.IntFlag{Name: "count", Aliases: []string{"c"}, EnvVars: []string{"COUNT"}, Value: 1, Usage: "number of worker processes"},
		&cli.StringFlag{Name: "interval", EnvVars: []string{"INTERVAL"}, Value: "5", Usage: "seconds to wait for a job before re-reading the queue list; 0 drains the queues and exits"},
		&cli.StringFlag{Name: "term-timeout", EnvVars: []string{"RESQUE_TERM_TIMEOUT"}, Value: "4", Usage: "seconds a handler has between SIGTERM and SIGKILL"},
		&cli.StringFlag{Name: "timeout", EnvVars: []string{"RESQUED_TIMEOUT"}, Value: "0", Usage: "seconds a job may run before it is stopped and failed; 0 means no limit"},
		&cli.StringFlag{Name: "on-orphan", EnvVars: []string{"RESQUED_ON_ORPHAN"}, Value: "requeue", Usage: "what becomes of a dead worker's in-flight job: requeue (at the head of its queue) or fail"},
		&cli.BoolFlag{Name: "only-known-classes", EnvVars: []string{"RESQUED_ONLY_KNOWN_CLASSES"}, Usage: "take only jobs whose class has a handler, leaving the rest for other workers"},
		&cli.BoolFlag{Name: "follow-symlinks", EnvVars: []string{"RESQUED_FOLLOW_SYMLINKS"}, Usage: "allow handler symlinks that point outside the handlers directory"},
		&cli.IntFlag{Name: "max-payload", EnvVars: []string{"RESQUED_MAX_PAYLOAD"}, Value: 16 << 20, Usage: "largest job payload in `BYTES`; bigger ones fail as Resqued::InvalidPayload"},
		&cli.IntFlag{Name: "max-jobs-per-process", EnvVars: []string{"RESQUED_MAX_JOBS_PER_PROCESS"}, Value: 1000, Usage: "recycle a persistent handler process after this many jobs"},
		&cli.IntFlag{Name: "max-rss-per-process", EnvVars: []string{"RESQUED_MAX_RSS_PER_PROCESS"}, Usage: "recycle a persistent handler process whose RSS passes this many `MB` (0: no limit)"},
		&cli.StringFlag{Name: "schedule", EnvVars: []string{"RESQUED_SCHEDULE"}, Usage: "recurring jobs, resque-scheduler's schedule.yml `FILE` (cron or every, class, queue, args)"},
		&cli.StringFlag{Name: "retry-config", EnvVars: []string{"RESQUED_RETRY_CONFIG"}, Usage: "retry policies per class, a YAML `FILE` (docs/scheduling.md); without one, exit 75 is retried 5 times from 30 s"},
		&cli.BoolFlag{Name: "scheduler", EnvVars: []string{"RESQUED_SCHEDULER"}, Value: true, Usage: "move due delayed jobs (resque-scheduler's layout) onto their queues; --scheduler=false leaves that to another process"},
		metricsFlag,
		historyFlag,
		&cli.StringFlag{Name: "hostname", EnvVars: []string{"RESQUED_HOSTNAME"}, Usage: "host `NAME` in worker ids (host:pid:queues); default the machine's. Give each container its own when several share a hostname"},
		&cli.IntFlag{Name: "max-redeliveries", EnvVars: []string{"RESQUED_MAX_REDELIVERIES"}, Value: 3, Usage: "times a job is requeued from workers that died running it before it fails as Resque::DirtyExit (-1: no limit)"},
		&cli.StringFlag{Name: "pidfile", EnvVars: []string{"PIDFILE"}, Usage: "write the daemon's pid to `FILE`; refuse to start if it names a live process"},
	), keepOutputFlags()...)
}

// runAction is the daemon: resqued --handlers DIR --queues LIST. With
// --count above 1 this process supervises that many worker processes,
// each of which runs this same action as one worker.
func runAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return unknownCommand(c.App.Commands, c.Args().First())
	}
	cfg, err := workerConfig(c)
	if err != nil {
		return err
	}
	d := &daemon{c: c, cfg: cfg, count: c.Int("count"), supervised: os.Getenv(supervisor.EnvParentPID) != ""}
	return d.run()
}

// fromSupervisor sets what a worker process learns from the supervisor
// that started it (pkg/supervisor): the supervisor's pid, to shut down if
// it goes, and the token of the worker's lease, so that the supervisor
// can clean up after it.
func fromSupervisor(cfg *worker.Config, getenv func(string) string) {
	cfg.ParentPID, _ = strconv.Atoi(getenv(supervisor.EnvParentPID))
	cfg.LeaseToken = getenv(supervisor.EnvLeaseToken)
}

// control maps Resque's signals onto actions (docs/operations.md).
type control struct{ stop, term, force, usr1, pause, resume func() }

// listen handles signals until the returned function is called.
func (ctl *control) listen(log hclog.Logger) (stop func()) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCONT)
	go func() {
		terminating := false
		for sig := range sigs {
			log.Debug("signal received", "signal", sig)
			switch sig {
			case syscall.SIGQUIT:
				ctl.stop()
			case syscall.SIGTERM, syscall.SIGINT:
				if terminating {
					ctl.force()
				} else {
					ctl.term()
				}
				terminating = true
			case syscall.SIGUSR1:
				ctl.usr1()
			case syscall.SIGUSR2:
				ctl.pause()
			case syscall.SIGCONT:
				ctl.resume()
			}
		}
	}()
	return func() { signal.Stop(sigs); close(sigs) }
}

// workerConfig reads the run flags into a worker.Config.
func workerConfig(c *cli.Context) (worker.Config, error) {
	log, err := newLogger(c)
	if err != nil {
		return worker.Config{}, err
	}
	specs := splitList(c.String("queues"))
	if len(specs) == 0 {
		return worker.Config{}, &usageError{msg: "no queues given", hint: "resqued --queues '*' (or QUEUES=high,low)"}
	}
	var interval, termTimeout, timeout time.Duration
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{"interval", &interval}, {"term-timeout", &termTimeout}, {"timeout", &timeout}} {
		d, err := parseSeconds(c.String(f.name))
		if err != nil || d < 0 {
			return worker.Config{}, &usageError{msg: fmt.Sprintf("--%s %q: want seconds", f.name, c.String(f.name)), hint: "--" + f.name + " 5"}
		}
		*f.d = d
	}
	if interval == 0 {
		interval = -1 // INTERVAL=0: drain, then exit
	}
	if termTimeout == 0 {
		termTimeout = time.Nanosecond // zero means the 4s default; the user asked for none
	}
	if o := c.String("on-orphan"); o != "requeue" && o != "fail" {
		return worker.Config{}, &usageError{msg: fmt.Sprintf("--on-orphan %q: want requeue or fail", o), hint: "--on-orphan requeue"}
	}
	if c.Int("count") < 1 {
		return worker.Config{}, &usageError{msg: fmt.Sprintf("--count %d: want at least 1", c.Int("count")), hint: "COUNT=4 resqued ..."}
	}
	limits, err := readLimits(c, "")
	if err != nil {
		return worker.Config{}, err
	}
	rcfg := runner.Config{Dir: c.String("handlers"), Logger: log.Named("handler"),
		TermTimeout: termTimeout, Timeout: timeout, FollowSymlinks: c.Bool("follow-symlinks"),
		Limits: limits.defaults, Cgroup: limits.cgroup}
	var kept worker.Config
	if err := keepOutputConfig(c, &kept, &rcfg); err != nil {
		return worker.Config{}, err
	}
	run, err := runner.New(rcfg)
	if err != nil {
		return worker.Config{}, handlersDirError("", "resqued", c.String("handlers"), err)
	}
	limits.warnUnhandled(run, log)
	rc, err := connect(c, log)
	if err != nil {
		return worker.Config{}, err
	}
	var retries *retry.Config
	if path := c.String("retry-config"); path != "" {
		if retries, err = retry.Load(path); err != nil {
			return worker.Config{}, &usageError{msg: err.Error(), hint: "--retry-config retries.yml"}
		}
	}
	hostname := c.String("hostname")
	if hostname == "" {
		hostname = queue.Hostname()
	} else if strings.ContainsAny(hostname, ": \t\n") {
		return worker.Config{}, &usageError{msg: fmt.Sprintf("--hostname %q: a worker id is host:pid:queues, so the name may hold no colon or space", hostname), hint: "--hostname web-3"}
	}
	if c.Int("max-redeliveries") == 0 {
		return worker.Config{}, &usageError{msg: "--max-redeliveries 0 would fail every job whose worker died; want at least 1, or -1 for no limit", hint: "--max-redeliveries 3"}
	}
	return worker.Config{
		Queue:    rc.queue,
		Status:   rc.status,
		Runner:   run,
		Queues:   specs,
		Interval: interval,
		Logger:   log.Named("worker"),
		SetTitle: titleSetter(),

		OnlyKnownClasses: c.Bool("only-known-classes"),
		OnOrphan:         c.String("on-orphan"),
		MaxPayload:       c.Int("max-payload"),
		Retry:            retries,
		Classes:          limits.config.Jobs(limits.defaults),
		Limits:           limits.config.Limits(),

		KeepOutput:             kept.KeepOutput,
		KeepOutputFailuresOnly: kept.KeepOutputFailuresOnly,
		KeepOutputMaxJobs:      kept.KeepOutputMaxJobs,

		Hostname:        hostname,
		MaxRedeliveries: c.Int("max-redeliveries"),

		MaxJobsPerProcess: c.Int("max-jobs-per-process"),
		History:           c.Bool("history"),
		MaxRSSPerProcess:  int64(c.Int("max-rss-per-process")) << 20,
	}, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

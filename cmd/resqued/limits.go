package main

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/handlerconfig"
	"github.com/resqued/resqued/pkg/runner"
)

// limitFlags are the per-job limit flags of the daemon and of try.
func limitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "memory-limit", EnvVars: []string{"RESQUED_MEMORY_LIMIT"}, Usage: "most memory a job's handler (its whole process group) may hold, a `SIZE` such as 512M or 2G; past it the job fails as Resqued::MemoryLimit"},
		&cli.StringFlag{Name: "cpu-limit", EnvVars: []string{"RESQUED_CPU_LIMIT"}, Usage: "most CPU time a job's handler may use, a `DURATION` such as 30s; past it the job fails as Resqued::CPULimit"},
		&cli.StringFlag{Name: "max-output", EnvVars: []string{"RESQUED_MAX_OUTPUT"}, Usage: "most bytes a job's handler may write to stdout and stderr, a `SIZE` such as 100M; past it the job fails as Resqued::OutputLimit"},
		&cli.IntFlag{Name: "max-procs", EnvVars: []string{"RESQUED_MAX_PROCS"}, Usage: "most processes in a job's process group, `N`, the handler included; past it the job fails as Resqued::ProcessLimit (0: no limit)"},
		&cli.StringFlag{Name: "handlers-config", EnvVars: []string{"RESQUED_HANDLERS_CONFIG"}, Usage: "per-class limits, timeout and env, a YAML `FILE` (docs/handlers.md, Limits); a class's values override the flags"},
		&cli.StringFlag{Name: "cgroup", EnvVars: []string{"RESQUED_CGROUP"}, Usage: "a delegated cgroup v2 `DIR` (systemd Delegate=yes) to enforce memory and process limits in (docs/operations.md, Limits)"},
	}
}

// jobLimits are what limitFlags say: the default limits, the handlers
// config (nil without one) and the cgroup directory.
type jobLimits struct {
	defaults runner.Limits
	config   *handlerconfig.Config
	cgroup   string
}

// readLimits reads limitFlags, with errors for the person who typed
// them; prefix starts each message ("try: " for try).
func readLimits(c *cli.Context, prefix string) (jobLimits, error) {
	var l jobLimits
	for _, f := range []struct {
		name, hint string
		v          *int64
	}{{"memory-limit", "--memory-limit 512M", &l.defaults.Memory}, {"max-output", "--max-output 100M", &l.defaults.Output}} {
		if s := c.String(f.name); s != "" {
			n, err := handlerconfig.ParseSize(s)
			if err != nil {
				return l, &usageError{msg: fmt.Sprintf("%s--%s %q: %s", prefix, f.name, s, err), hint: f.hint}
			}
			*f.v = n
		}
	}
	if s := c.String("cpu-limit"); s != "" {
		d, err := handlerconfig.ParseDuration(s)
		if err != nil {
			return l, &usageError{msg: fmt.Sprintf("%s--cpu-limit %q: %s", prefix, s, err), hint: "--cpu-limit 30s"}
		}
		l.defaults.CPU = d
	}
	if l.defaults.Procs = c.Int("max-procs"); l.defaults.Procs < 0 {
		return l, &usageError{msg: fmt.Sprintf("%s--max-procs %d: must not be negative (0 means no limit)", prefix, l.defaults.Procs), hint: "--max-procs 16"}
	}
	conf, err := loadHandlersConfig(c, prefix)
	if err != nil {
		return l, err
	}
	l.config = conf
	l.cgroup = c.String("cgroup")
	return l, nil
}

// loadHandlersConfig reads --handlers-config, if given (nil if not),
// for the daemon, resqued stats and resqued web; prefix names the
// command in the error.
func loadHandlersConfig(c *cli.Context, prefix string) (*handlerconfig.Config, error) {
	path := c.String("handlers-config")
	if path == "" {
		return nil, nil
	}
	conf, err := handlerconfig.Load(path)
	if err != nil {
		return nil, &usageError{msg: prefix + err.Error(), hint: "--handlers-config handlers.yml (docs/handlers.md, Limits)"}
	}
	return conf, nil
}

// warnUnhandled logs the classes the handlers config names that have no
// handler: not an error, as a class may be configured before its
// handler is deployed.
func (l jobLimits) warnUnhandled(r *runner.Runner, log hclog.Logger) {
	for _, class := range l.config.Unhandled(r) {
		log.Warn("handlers config names a class with no handler", "config", l.config.Path, "class", class, "line", l.config.Classes[class].Line)
	}
}

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/internal/outage"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/redisurl"
	"github.com/resqued/resqued/pkg/status"
)

// connFlags are the flags every command that talks to Redis takes.
func connFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "redis", EnvVars: []string{"REDIS_URL"}, Usage: "Redis `URL`: redis://[user:pass@]host:port/db, rediss://..., unix:///path.sock?db=N, redis+sentinel://[user:pass@]host1:26379,host2:26379/mastername/db (sentinels' own password in RESQUED_SENTINEL_PASSWORD), redis+cluster://host1:port1,host2:port2/ (with a hash-tagged --namespace such as '{resque}'; also php-resque's REDIS_BACKEND=host:port and REDIS_BACKEND_DB)", DefaultText: redisurl.Default},
		&cli.StringFlag{Name: "namespace", EnvVars: []string{"RESQUE_NAMESPACE", "PREFIX"}, Value: "resque", Usage: "key namespace, as Resque.redis.namespace"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log one line per job (also VERBOSE or LOGGING set to anything)"},
		&cli.BoolFlag{Name: "vv", Usage: "debug logging (also VVERBOSE set to anything)"},
		&cli.StringFlag{Name: "log-level", EnvVars: []string{"RESQUED_LOG_LEVEL"}, Usage: "trace, debug, info, warn or error; overrides -v/-vv", DefaultText: "warn"},
		&cli.StringFlag{Name: "log-format", EnvVars: []string{"RESQUED_LOG_FORMAT"}, Value: "text", Usage: "text or json"},
	}
}

// replicaFlags are the flags of the commands that write jobs (the daemon,
// enqueue): how many replicas must acknowledge each write.
func replicaFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "min-replicas", EnvVars: []string{"RESQUED_MIN_REPLICAS"}, Usage: "after each write that records or moves a job, wait (Redis WAIT) until `N` replicas have it, and say so when they do not in time; 0 waits for none (docs/reliability.md)"},
		&cli.StringFlag{Name: "min-replicas-timeout", EnvVars: []string{"RESQUED_MIN_REPLICAS_TIMEOUT"}, Value: "1", Usage: "seconds each write waits for --min-replicas (or a duration such as 250ms)"},
	}
}

// replicaOptions reads replicaFlags into queue options; log, when not
// nil, hears about worker-side writes the replicas did not acknowledge.
func replicaOptions(c *cli.Context, log hclog.Logger) ([]queue.Option, error) {
	n := c.Int("min-replicas")
	if n == 0 {
		return nil, nil
	}
	if n < 0 {
		return nil, &usageError{msg: fmt.Sprintf("--min-replicas %d: want a number of replicas, 0 for none", n), hint: "--min-replicas 1"}
	}
	timeout, err := parseSeconds(c.String("min-replicas-timeout"))
	if err != nil || timeout <= 0 {
		return nil, &usageError{msg: fmt.Sprintf("--min-replicas-timeout %q: want seconds above zero (WAIT with 0 would wait for ever)", c.String("min-replicas-timeout")), hint: "--min-replicas-timeout 1"}
	}
	opts := []queue.Option{queue.WithMinReplicas(n, timeout)}
	if log != nil {
		acks := &outage.Replicas{Logger: log.Named("replicas")}
		opts = append(opts, queue.WithReplicaReport(acks.Report))
	}
	return opts, nil
}

// redisURL picks the server from --redis/REDIS_URL, then php-resque's
// REDIS_BACKEND(_DB), then the default.
func redisURL(c *cli.Context) string {
	if u := c.String("redis"); u != "" {
		return u
	}
	if u := redisurl.Normalize(os.Getenv("REDIS_BACKEND"), os.Getenv("REDIS_BACKEND_DB")); u != "" {
		return u
	}
	return redisurl.Default
}

// redisClients are what a command reaches Redis through: pkg/queue for
// jobs, workers, stats, failures and delayed items, pkg/status for
// statuses, both on one connection pool. Close closes the pool.
type redisClients struct {
	queue  *queue.Client
	status *status.Tracker
	Close  func() error
}

// connect is how every command reaches Redis: a pool for the chosen
// server (at debug level every command is logged) and the namespace its
// keys live under. The namespace is kept without the colon resqued adds
// itself, and php-resque's PREFIX carries one ("resque:"): it is trimmed
// here, once, so that every command (the daemon, enqueue, status, stats,
// failed, delayed, web) names the same keys whichever spelling was given.
func connect(c *cli.Context, log hclog.Logger) (*redisClients, error) {
	ns := strings.TrimSuffix(c.String("namespace"), ":")
	// The sentinels' password comes from the environment only: a flag
	// would show it in ps.
	opt := redisurl.Options{Namespace: ns, SentinelPassword: os.Getenv("RESQUED_SENTINEL_PASSWORD")}
	if log != nil && log.IsDebug() {
		opt.CommandLog = log.Named("redis").StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug})
	}
	opts, err := replicaOptions(c, log)
	if err != nil {
		return nil, err
	}
	pool, err := redisurl.NewPool(redisURL(c), opt)
	if errors.Is(err, redisurl.ErrClusterNamespace) {
		return nil, &usageError{msg: "A Redis Cluster needs a hash-tagged namespace, so that every key lives in one slot: " + strconv.Quote(ns) + " has no {tag}.", hint: "resqued --namespace '{resque}' (and the same namespace in Ruby and PHP: docs/operations.md, Redis Cluster)"}
	}
	if err != nil {
		return nil, &usageError{msg: err.Error(), hint: "resqued --redis redis://127.0.0.1:6379/0"}
	}
	return &redisClients{queue: queue.New(pool.Pool, ns, opts...), status: status.New(pool.Pool, ns), Close: pool.Close}, nil
}

// newLogger builds the root logger. Resque's VERBOSE and VVERBOSE are on
// when set to anything at all, so they are read here, not as booleans.
func newLogger(c *cli.Context) (hclog.Logger, error) {
	level := hclog.Warn
	if c.Bool("verbose") || envSet("VERBOSE") || envSet("LOGGING") {
		level = hclog.Info
	}
	if c.Bool("vv") || envSet("VVERBOSE") {
		level = hclog.Debug
	}
	if s := c.String("log-level"); s != "" {
		if level = hclog.LevelFromString(s); level == hclog.NoLevel {
			return nil, &usageError{msg: "unknown log level " + strconv.Quote(s), hint: "--log-level info"}
		}
	}
	format := c.String("log-format")
	if format != "text" && format != "json" {
		return nil, &usageError{msg: "unknown log format " + strconv.Quote(format), hint: "--log-format json"}
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "resqued",
		Level:      level,
		JSONFormat: format == "json",
		Output:     os.Stderr,
		TimeFormat: time.RFC3339Nano,
	}), nil
}

func envSet(name string) bool {
	_, ok := os.LookupEnv(name)
	return ok
}

// parseSeconds reads Resque-style durations: "4", "0.5" (seconds) or Go
// durations such as "4s" and "250ms".
func parseSeconds(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

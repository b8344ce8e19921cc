// Package redisurl turns the ways Resque users name a Redis server into a
// redigo connection pool: redis://[user:pass@]host:port/db URLs,
// rediss:// for TLS, unix:///path/redis.sock?db=N, php-resque's bare
// host:port (REDIS_BACKEND) with a separate database number,
// redis+sentinel://[user:pass@]host1:26379,host2:26379/mymaster/db for a
// primary that Redis Sentinel names (sentinel.go), and
// redis+cluster://host1:port1,host2:port2/ for a Redis Cluster (see
// cluster.go: the namespace must then be hash-tagged, "{resque}").
//
// Every pool survives a failover of its primary (failover.go): a
// connection that answers READONLY or UNBLOCKED, or breaks, marks every
// connection dialled before it stale; stale connections are closed
// instead of reused, and the next dial resolves the host name afresh.
//
// Any of these URLs may end in ?read_timeout=D (a Go duration such as
// "1500ms", or seconds): how long a command may wait for its reply before
// the connection is dropped, instead of Options.Timeout. Tests shorten it
// to make a delayed reply count as lost; operators rarely need it.
//
// Passwords never leave this package except inside dial options:
// Redacted is what logs and process titles show.
package redisurl

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Default is used when nothing names a server.
const Default = "redis://127.0.0.1:6379/0"

// Normalize turns a php-resque REDIS_BACKEND value ("host:port", or
// "host") plus an optional REDIS_BACKEND_DB into a redis:// URL; values
// that already have a scheme pass through unchanged.
func Normalize(backend, db string) string {
	if backend == "" {
		return ""
	}
	if strings.Contains(backend, "://") {
		return backend
	}
	if _, _, err := net.SplitHostPort(backend); err != nil {
		backend = net.JoinHostPort(backend, "6379")
	}
	u := "redis://" + backend
	if db != "" {
		u += "/" + db
	}
	return u
}

// Redacted returns raw with any password (the user's, and a Sentinel
// URL's sentinel_password) replaced by "xxxxx".
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable redis url)"
	}
	if q := u.Query(); q.Has("sentinel_password") {
		q.Set("sentinel_password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Pool options.
type Options struct {
	// MaxIdle idle connections kept. Zero means 4.
	MaxIdle int
	// Timeout for connecting, reading and writing. Zero means 10s.
	// Blocking commands pass their own read timeout.
	Timeout time.Duration
	// CommandLog, when set, receives every command and reply (for
	// debug logging).
	CommandLog *log.Logger
	// Namespace is the key namespace (without its trailing colon). A
	// Redis Cluster URL needs it: it must carry a hash tag, whose slot
	// names the master every connection goes to (cluster.go).
	Namespace string
	// SentinelPassword authenticates to the sentinels of a
	// redis+sentinel URL that has no ?sentinel_password= (commands read
	// it from RESQUED_SENTINEL_PASSWORD). Empty: the primary's password
	// is offered to sentinels that ask for one.
	SentinelPassword string
}

// Pool is a redigo pool plus what runs beside it (a Sentinel watcher).
// Close it, not the embedded pool.
type Pool struct {
	*redis.Pool
	f    *failover
	stop func()
}

// Close stops what runs beside the pool, then closes the pool.
func (p *Pool) Close() error {
	if p.stop != nil {
		p.stop()
	}
	return p.Pool.Close()
}

// Failovers is how many times the pool dropped its connections because
// the primary changed (or a connection broke).
func (p *Pool) Failovers() int64 { return p.f.switches.Load() }

// NewPool checks raw and returns a pool that dials it. It does not
// connect; the first command does.
func NewPool(raw string, opt Options) (*Pool, error) {
	f := &failover{}
	dial, stop, err := dialer(raw, opt, f)
	if err != nil {
		return nil, err
	}
	if opt.MaxIdle == 0 {
		opt.MaxIdle = 4
	}
	if l := opt.CommandLog; l != nil {
		inner := dial
		dial = func(ctx context.Context) (redis.Conn, error) {
			c, err := inner(ctx)
			if err != nil {
				return nil, err
			}
			// AUTH would show the password: never log it.
			return redis.NewLoggingConnFilter(c, l, "redis", func(cmd string) bool {
				return strings.EqualFold(cmd, "AUTH")
			}), nil
		}
	}
	inner := dial
	dial = func(ctx context.Context) (redis.Conn, error) {
		c, err := inner(ctx)
		if err != nil {
			return nil, err
		}
		return f.wrap(c), nil
	}
	return &Pool{f: f, stop: stop, Pool: &redis.Pool{
		MaxIdle:     opt.MaxIdle,
		IdleTimeout: 4 * time.Minute,
		DialContext: dial,
		TestOnBorrow: func(c redis.Conn, t time.Time) error {
			if err := f.check(c); err != nil {
				return err
			}
			if time.Since(t) < time.Minute {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}}, nil
}

// dialer returns how to dial raw, and what stops anything it runs
// (nil: nothing). Every dial resolves the host name again: nothing
// keeps an address, so a name re-pointed at a new primary is followed.
func dialer(raw string, opt Options, f *failover) (func(context.Context) (redis.Conn, error), func(), error) {
	if opt.Timeout == 0 {
		opt.Timeout = 10 * time.Second
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("parse redis url %s: %w", Redacted(raw), err)
	}
	readTimeout := opt.Timeout
	if q := u.Query(); q.Has("read_timeout") {
		if readTimeout, err = parseTimeout(q.Get("read_timeout")); err != nil {
			return nil, nil, fmt.Errorf("parse redis url %s: read_timeout: %w", Redacted(raw), err)
		}
		q.Del("read_timeout")
		u.RawQuery = q.Encode()
		raw = u.String()
	}
	timeouts := []redis.DialOption{
		redis.DialConnectTimeout(opt.Timeout),
		redis.DialReadTimeout(readTimeout),
		redis.DialWriteTimeout(opt.Timeout),
	}
	switch u.Scheme {
	case "redis+cluster", "rediss+cluster":
		d, err := newClusterDialer(u, raw, opt, timeouts)
		if err != nil {
			return nil, nil, err
		}
		return d.Dial, nil, nil
	case SentinelScheme:
		s, err := parseSentinel(raw, u, opt, timeouts, f)
		if err != nil {
			return nil, nil, err
		}
		return s.dial, s.Close, nil
	case "redis", "rediss":
		if u.Host == "" {
			return nil, nil, fmt.Errorf("parse redis url %s: no host", Redacted(raw))
		}
		if p := strings.Trim(u.Path, "/"); p != "" {
			if _, err := strconv.Atoi(p); err != nil {
				return nil, nil, fmt.Errorf("parse redis url %s: database %q is not a number", Redacted(raw), p)
			}
		}
		return func(ctx context.Context) (redis.Conn, error) {
			return redis.DialURLContext(ctx, raw, timeouts...)
		}, nil, nil
	case "unix":
		path := u.Path
		if path == "" {
			return nil, nil, fmt.Errorf("parse redis url %s: no socket path", Redacted(raw))
		}
		opts := append([]redis.DialOption{}, timeouts...)
		if db := u.Query().Get("db"); db != "" {
			n, err := strconv.Atoi(db)
			if err != nil {
				return nil, nil, fmt.Errorf("parse redis url %s: database %q is not a number", Redacted(raw), db)
			}
			opts = append(opts, redis.DialDatabase(n))
		}
		opts = append(opts, credentials(u)...)
		return func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "unix", path, opts...)
		}, nil, nil
	}
	return nil, nil, fmt.Errorf("parse redis url %s: scheme must be redis, rediss, unix, redis+cluster, rediss+cluster or %s", Redacted(raw), SentinelScheme)
}

// credentials are the AUTH options of a URL's user:pass@, if any (a
// username alone is ignored, as AUTH needs a password).
func credentials(u *url.URL) []redis.DialOption {
	if u.User == nil {
		return nil
	}
	pw, ok := u.User.Password()
	if !ok {
		return nil
	}
	opts := []redis.DialOption{redis.DialPassword(pw)}
	if name := u.User.Username(); name != "" {
		opts = append(opts, redis.DialUsername(name))
	}
	return opts
}

// parseTimeout reads a Go duration ("1500ms") or a number of seconds
// ("1.5"); it must be positive.
func parseTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil {
			return 0, fmt.Errorf("%q is not a duration", v)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not positive", v)
	}
	return d, nil
}

// hostList splits a URL's comma-separated hosts (Sentinel's, a
// Cluster's seeds), giving each one without a port defPort. It returns
// nil when an entry is empty: a URL typo that would otherwise dial the
// local host.
func hostList(hosts, defPort string) []string {
	var out []string
	for _, h := range strings.Split(hosts, ",") {
		if h == "" {
			return nil
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, defPort)
		}
		out = append(out, h)
	}
	return out
}

package redisurl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// SentinelScheme names a primary through Redis Sentinel:
// redis+sentinel://[user:pass@]host1:26379,host2:26379/mymaster/0.
const SentinelScheme = "redis+sentinel"

// sentinel dials the primary that a set of Redis Sentinels name, and
// watches them for +switch-master.
type sentinel struct {
	addrs  []string // the sentinels, host:port
	master string   // the monitored master's name
	// auth for the sentinels: their own password, or (tried, never
	// required) the primary's.
	sentinelPass  string
	tryMasterPass bool
	masterPass    string
	masterOpts    []redis.DialOption // timeouts, AUTH and SELECT
	timeout       time.Duration
	f             *failover

	mu     sync.Mutex
	next   int    // the sentinel to ask first: the last that answered
	last   string // the primary's address at the last dial
	watch  sync.Once
	stop   chan struct{}
	closed bool
	sub    redis.Conn // the watcher's connection, closed by Close
	wg     sync.WaitGroup
}

// parseSentinel reads a redis+sentinel URL. The query may carry
// sentinel_password (the sentinels' own password, when it is not the
// primary's); opt.SentinelPassword is used when it does not.
func parseSentinel(raw string, u *url.URL, opt Options, timeouts []redis.DialOption, f *failover) (*sentinel, error) {
	bad := func(format string, a ...interface{}) error {
		return fmt.Errorf("parse redis url %s: "+format, append([]interface{}{Redacted(raw)}, a...)...)
	}
	if u.Host == "" {
		return nil, bad("no sentinel hosts")
	}
	s := &sentinel{master: "", timeout: opt.Timeout, f: f, stop: make(chan struct{})}
	if s.addrs = hostList(u.Host, "26379"); s.addrs == nil {
		return nil, bad("empty sentinel host")
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if parts[0] == "" || len(parts) > 2 {
		return nil, bad("the path must be /<master name>[/<db>]")
	}
	s.master = parts[0]
	opts := append([]redis.DialOption{}, timeouts...)
	if len(parts) == 2 && parts[1] != "" {
		n, err := strconv.Atoi(parts[1])
		if err != nil {
			return nil, bad("database %q is not a number", parts[1])
		}
		opts = append(opts, redis.DialDatabase(n))
	}
	if u.User != nil {
		s.masterPass, _ = u.User.Password()
	}
	opts = append(opts, credentials(u)...)
	s.masterOpts = opts
	q := u.Query()
	s.sentinelPass = opt.SentinelPassword
	if q.Has("sentinel_password") {
		s.sentinelPass = q.Get("sentinel_password")
	}
	s.tryMasterPass = s.sentinelPass == "" && s.masterPass != ""
	for k := range q {
		if k != "sentinel_password" {
			return nil, bad("unknown parameter %q", k)
		}
	}
	return s, nil
}

// errNotMaster is a dialled server whose ROLE is not master.
var errNotMaster = errors.New("not the primary (ROLE is not master)")

// dial asks the sentinels in turn for the primary, connects to it and
// checks that it says it is one. It tries each sentinel once, starting
// with the last that answered.
func (s *sentinel) dial(ctx context.Context) (redis.Conn, error) {
	s.watch.Do(s.startWatch)
	s.mu.Lock()
	first := s.next
	s.mu.Unlock()
	var errs []string
	for i := range s.addrs {
		n := (first + i) % len(s.addrs)
		c, addr, err := s.dialVia(ctx, s.addrs[n])
		if err == nil {
			s.mu.Lock()
			s.next, s.last = n, addr
			s.mu.Unlock()
			return c, nil
		}
		if isAuthError(err) {
			return nil, err
		}
		errs = append(errs, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("find primary %q through sentinels: %s", s.master, strings.Join(errs, "; "))
}

// dialVia asks one sentinel for the primary and connects to it.
func (s *sentinel) dialVia(ctx context.Context, via string) (redis.Conn, string, error) {
	addr, err := s.masterAddr(ctx, via)
	if err != nil {
		return nil, "", err
	}
	c, err := redis.DialContext(ctx, "tcp", addr, s.masterOpts...)
	if err != nil {
		return nil, addr, fmt.Errorf("connect to primary %q at %s (named by sentinel %s): %w", s.master, addr, via, err)
	}
	role, err := redis.Values(c.Do("ROLE"))
	if err == nil && (len(role) == 0 || !strings.EqualFold(asString(role[0]), "master")) {
		err = errNotMaster
	}
	if err != nil {
		c.Close()
		return nil, addr, fmt.Errorf("check primary %q at %s (named by sentinel %s): %w", s.master, addr, via, err)
	}
	return c, addr, nil
}

// masterAddr asks the sentinel at via where the primary is.
func (s *sentinel) masterAddr(ctx context.Context, via string) (string, error) {
	c, err := s.dialSentinel(ctx, via)
	if err != nil {
		return "", err
	}
	defer c.Close()
	hp, err := redis.Strings(c.Do("SENTINEL", "get-master-addr-by-name", s.master))
	if errors.Is(err, redis.ErrNil) {
		return "", fmt.Errorf("ask sentinel %s: it does not monitor a master named %q", via, s.master)
	}
	if err != nil {
		return "", fmt.Errorf("ask sentinel %s for %q: %w", via, s.master, err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("ask sentinel %s for %q: unexpected reply %q", via, s.master, hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// dialSentinel connects to one sentinel and authenticates: with the
// sentinels' own password when one is given, else with the primary's if
// the sentinel asks for one.
func (s *sentinel) dialSentinel(ctx context.Context, addr string) (redis.Conn, error) {
	opts := []redis.DialOption{redis.DialConnectTimeout(s.timeout), redis.DialReadTimeout(s.timeout), redis.DialWriteTimeout(s.timeout)}
	if s.sentinelPass != "" {
		opts = append(opts, redis.DialPassword(s.sentinelPass))
	}
	c, err := redis.DialContext(ctx, "tcp", addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to sentinel %s: %w", addr, err)
	}
	if s.tryMasterPass {
		if _, err := c.Do("AUTH", s.masterPass); err != nil && !strings.Contains(err.Error(), "without any password configured") {
			c.Close()
			return nil, fmt.Errorf("authenticate to sentinel %s with the primary's password (give the sentinels' own with ?sentinel_password= or RESQUED_SENTINEL_PASSWORD): %w", addr, err)
		}
	}
	return c, nil
}

// isAuthError reports a refused password or a missing one: asking
// another sentinel would not help.
func isAuthError(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	s := string(re)
	return strings.HasPrefix(s, "WRONGPASS") || strings.HasPrefix(s, "NOAUTH") || strings.HasPrefix(s, "NOPERM") ||
		strings.HasPrefix(s, "ERR invalid password")
}

func asString(v interface{}) string {
	b, _ := v.([]byte)
	return string(b)
}

// startWatch starts the watcher, once, at the first dial: a pool that is
// never used never connects.
func (s *sentinel) startWatch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go s.watchLoop()
}

// watchPing is how often the watcher pings its sentinel; a sentinel that
// stays silent for three of these is given up for the next one.
const watchPing = 2 * time.Second

// watchLoop subscribes to +switch-master on one sentinel after another,
// until Close. A switch of this primary starts a new generation, so that
// no connection to the old primary is used again. After reconnecting it
// asks where the primary is: a switch announced while it was away is not
// missed.
func (s *sentinel) watchLoop() {
	defer s.wg.Done()
	delay := 100 * time.Millisecond
	for i := 0; ; i++ {
		select {
		case <-s.stop:
			return
		default:
		}
		if s.watchOnce(s.addrs[i%len(s.addrs)]) {
			delay = 100 * time.Millisecond
			continue
		}
		t := time.NewTimer(delay)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// watchOnce follows one sentinel until its connection fails. It reports
// whether it got as far as subscribing.
func (s *sentinel) watchOnce(addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	c, err := s.dialSentinel(ctx, addr)
	cancel()
	if err != nil {
		return false
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return false
	}
	s.sub = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.sub = nil
		s.mu.Unlock()
		c.Close()
	}()
	psc := redis.PubSubConn{Conn: c}
	if err := psc.Subscribe("+switch-master"); err != nil {
		return false
	}
	// Pings keep the subscription honest: a sentinel that stops
	// answering is left after 3*watchPing.
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(watchPing)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if psc.Ping("") != nil {
					return
				}
			}
		}
	}()
	subscribed := false
	for {
		switch v := psc.ReceiveWithTimeout(3 * watchPing).(type) {
		case redis.Subscription:
			if !subscribed {
				subscribed = true
				s.catchUp(addr)
			}
		case redis.Message:
			// "<name> <old ip> <old port> <new ip> <new port>"
			if f := strings.Fields(string(v.Data)); len(f) == 5 && f[0] == s.master {
				s.switched(net.JoinHostPort(f[3], f[4]))
			}
		case error:
			return subscribed
		}
	}
}

// catchUp asks the sentinel at addr where the primary is, and starts a
// new generation if it moved since the last dial.
func (s *sentinel) catchUp(addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	now, err := s.masterAddr(ctx, addr)
	if err != nil {
		return
	}
	s.switched(now)
}

// switched records that the primary is at addr now.
func (s *sentinel) switched(addr string) {
	s.mu.Lock()
	moved := s.last != "" && s.last != addr
	s.mu.Unlock()
	if moved {
		s.f.bump()
	}
}

// Close stops the watcher and waits for it.
func (s *sentinel) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
		if s.sub != nil {
			s.sub.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

package redisurl_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/redisurl"
)

// haWithin bounds every wait on a failover.
const haWithin = 30 * time.Second

func sentinelPool(t *testing.T, url string, opt redisurl.Options) *redisurl.Pool {
	t.Helper()
	p, err := redisurl.NewPool(url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// serverPort is the port of the server a pooled connection reaches.
func serverPort(t *testing.T, p *redisurl.Pool) (string, error) {
	t.Helper()
	c := p.Get()
	defer c.Close()
	kv, err := redis.StringMap(c.Do("CONFIG", "GET", "port"))
	return kv["port"], err
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestSentinel_Failover: a pool on a redis+sentinel URL reaches the
// primary the sentinels name; after SENTINEL FAILOVER, and then after the
// new primary is killed with SIGKILL, its next commands reach the new
// primary, and connections to the old one are not used again.
func TestSentinel_Failover(t *testing.T) {
	t.Parallel()
	a := redistest.Start(t)
	b := redistest.StartReplica(t, a)
	ss := redistest.StartSentinels(t, a, "mymaster", redistest.SentinelOptions{})
	p := sentinelPool(t, "redis+sentinel://"+ss.Addrs()+"/mymaster/2", redisurl.Options{})

	c := p.Get()
	if _, err := c.Do("SET", "k", "before"); err != nil {
		t.Fatalf("SET through the sentinels: %v", err)
	}
	if got, err := serverPort(t, p); err != nil || got != port(a.Addr) {
		t.Fatalf("pool reached port %s (%v), want the primary's %s", got, err, port(a.Addr))
	}
	if got := getDB(t, a, 2, "k"); got != "before" {
		t.Fatalf("primary's db 2 has k = %q, want before", got)
	}

	// A forced failover: the sentinels' +switch-master makes the pool
	// drop the connection it holds to the old primary.
	switched := time.Now()
	old := ss.Failover(t)
	now := ss.WaitSwitch(t, old, haWithin)
	if now != b.Addr {
		t.Fatalf("sentinels switched to %s, want the replica %s", now, b.Addr)
	}
	redistest.Eventually(t, haWithin, func() bool { return p.Failovers() > 0 }, "the pool never noticed the switch")
	if !errors.Is(c.Err(), redisurl.ErrFailover) {
		t.Errorf("held connection's Err = %v, want ErrFailover", c.Err())
	}
	c.Close()
	// The next commands reach the new primary, without a single error
	// once the switch was seen.
	if got, err := serverPort(t, p); err != nil || got != port(b.Addr) {
		t.Fatalf("after the switch the pool reached port %s (%v), want %s", got, err, port(b.Addr))
	}
	if _, err := p.Get().Do("SET", "k", "after"); err != nil {
		t.Fatalf("SET after the switch: %v", err)
	}
	if got := getDB(t, b, 2, "k"); got != "after" {
		t.Errorf("new primary's db 2 has k = %q, want after", got)
	}
	t.Logf("SENTINEL FAILOVER: pool on the new primary %.2fs after asking", time.Since(switched).Seconds())

	// Now kill the new primary: the sentinels fail over back to a.
	a.WaitLinkUp(t)
	killed := time.Now()
	b.Stop()
	var last error
	redistest.Eventually(t, haWithin, func() bool {
		c := p.Get()
		defer c.Close()
		_, last = c.Do("SET", "k", "after-kill")
		return last == nil
	}, "no SET succeeded after the primary was killed; last error: %v", last)
	if got, err := serverPort(t, p); err != nil || got != port(a.Addr) {
		t.Fatalf("after the kill the pool reached port %s (%v), want %s", got, err, port(a.Addr))
	}
	if got := getDB(t, a, 2, "k"); got != "after-kill" {
		t.Errorf("a's db 2 has k = %q, want after-kill", got)
	}
	t.Logf("kill -9 of the primary: writes resumed after %.2fs", time.Since(killed).Seconds())
}

// getDB reads key from database db of srv.
func getDB(t *testing.T, srv *redistest.Server, db int, key string) string {
	t.Helper()
	v, _ := redis.String(srv.Do(t, "EVAL", "redis.call('SELECT', ARGV[1]) return redis.call('GET', KEYS[1])", 1, key, db), nil)
	return v
}

// TestSentinel_RefusesReplica: a sentinel that names a replica as the
// primary is not trusted: ROLE says slave, and the dial fails saying so.
func TestSentinel_RefusesReplica(t *testing.T) {
	t.Parallel()
	a := redistest.Start(t)
	b := redistest.StartReplica(t, a)
	ss := redistest.StartSentinels(t, b, "wrong", redistest.SentinelOptions{N: 1, DownAfter: time.Minute})
	p := sentinelPool(t, "redis+sentinel://"+ss.Addrs()+"/wrong", redisurl.Options{})
	_, err := p.Get().Do("PING")
	if err == nil || !strings.Contains(err.Error(), "ROLE is not master") || !strings.Contains(err.Error(), b.Addr) {
		t.Fatalf("dial of a replica: err = %v, want one naming %s and its ROLE", err, b.Addr)
	}
}

// TestSentinel_Passwords: the primary's password is given to the
// primary; the sentinels' own comes from ?sentinel_password= or
// Options.SentinelPassword; a wrong one is a clear error; no error and
// no Redacted URL shows a password.
func TestSentinel_Passwords(t *testing.T) {
	t.Parallel()
	const pw, spw = "primary-s3cret", "sentinel-s3cret"
	a := redistest.Start(t, redistest.Password(pw))
	ss := redistest.StartSentinels(t, a, "m", redistest.SentinelOptions{N: 1, AuthPass: pw, Password: spw})
	base := "redis+sentinel://:" + pw + "@" + ss.Addrs() + "/m"
	noLeak := func(what, s string) {
		t.Helper()
		if strings.Contains(s, pw) || strings.Contains(s, spw) {
			t.Errorf("%s shows a password: %s", what, s)
		}
	}
	ping := func(url string, opt redisurl.Options) error {
		t.Helper()
		p := sentinelPool(t, url, opt)
		_, err := p.Get().Do("PING")
		return err
	}
	if err := ping(base+"?sentinel_password="+spw, redisurl.Options{}); err != nil {
		t.Errorf("with ?sentinel_password=: %v", err)
	}
	if err := ping(base, redisurl.Options{SentinelPassword: spw}); err != nil {
		t.Errorf("with Options.SentinelPassword: %v", err)
	}
	err := ping(base, redisurl.Options{})
	if err == nil || !strings.Contains(err.Error(), "sentinel_password") {
		t.Errorf("without the sentinels' password: err = %v, want a hint at sentinel_password", err)
	} else {
		noLeak("error", err.Error())
	}
	err = ping("redis+sentinel://:wrong-"+pw+"@"+ss.Addrs()+"/m?sentinel_password="+spw, redisurl.Options{})
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("with a wrong primary password: err = %v, want WRONGPASS", err)
	} else {
		noLeak("error", err.Error())
	}
	err = ping(base+"?sentinel_password=wrong", redisurl.Options{})
	if err == nil || !strings.Contains(err.Error(), "sentinel") {
		t.Errorf("with a wrong sentinel password: err = %v", err)
	}
	noLeak("Redacted", redisurl.Redacted(base+"?sentinel_password="+spw))
}

func TestSentinel_BadURLs(t *testing.T) {
	for _, bad := range []string{
		"redis+sentinel://",
		"redis+sentinel://h:26379",
		"redis+sentinel://h:26379/",
		"redis+sentinel://h:26379/m/x",
		"redis+sentinel://h:26379/m/0/extra",
		"redis+sentinel://h:26379,,h2/m",
		"redis+sentinel://h:26379/m?nope=1",
	} {
		if _, err := redisurl.NewPool(bad, redisurl.Options{}); err == nil {
			t.Errorf("NewPool(%q) accepted", bad)
		}
	}
	p, err := redisurl.NewPool("redis+sentinel://h1,h2:26380/m/1?read_timeout=2s&sentinel_password=x", redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

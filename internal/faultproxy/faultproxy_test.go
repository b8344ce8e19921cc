package faultproxy_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/faultproxy"
	"github.com/resqued/resqued/internal/redistest"
)

func start(t *testing.T) (*redistest.Server, *faultproxy.Proxy) {
	t.Helper()
	srv := redistest.Start(t)
	p, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return srv, p
}

func dial(t *testing.T, p *faultproxy.Proxy, readTimeout time.Duration) redis.Conn {
	t.Helper()
	c, err := redis.Dial("tcp", p.Addr, redis.DialReadTimeout(readTimeout), redis.DialConnectTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func get(t *testing.T, srv *redistest.Server, key string) string {
	t.Helper()
	s, _ := redis.String(srv.Do(t, "GET", key), nil)
	return s
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestProxy_Normal(t *testing.T) {
	srv, p := start(t)
	c := dial(t, p, 5*time.Second)
	if _, err := c.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if got, want := get(t, srv, "k"), "v"; got != want {
		t.Fatalf("GET k = %q, want %q", got, want)
	}
}

// A reply held past the client's read timeout: the client gives up, but
// the server ran the command.
func TestProxy_Latency(t *testing.T) {
	srv, p := start(t)
	c := dial(t, p, 200*time.Millisecond)
	if _, err := c.Do("PING"); err != nil {
		t.Fatal(err)
	}
	p.Latency(time.Second)
	_, err := c.Do("SET", "k", "late")
	if !isTimeout(err) {
		t.Fatalf("SET through a 1s latency with a 200ms read timeout: err = %v, want a timeout", err)
	}
	if got, want := get(t, srv, "k"), "late"; got != want {
		t.Fatalf("GET k = %q, want %q (the request must reach the server)", got, want)
	}
	p.Normal()
	c2 := dial(t, p, 5*time.Second)
	if _, err := c2.Do("PING"); err != nil {
		t.Fatalf("PING after Normal: %v", err)
	}
}

func TestProxy_DropReplies(t *testing.T) {
	t.Run("ThenReset", func(t *testing.T) {
		srv, p := start(t)
		c := dial(t, p, 5*time.Second)
		p.DropReplies(true)
		_, err := c.Do("SET", "k", "dropped")
		if err == nil || isTimeout(err) {
			t.Fatalf("SET with replies dropped then reset: err = %v, want a connection error", err)
		}
		if got, want := get(t, srv, "k"), "dropped"; got != want {
			t.Fatalf("GET k = %q, want %q", got, want)
		}
		if _, swallowed, resets := p.Stats(); swallowed == 0 || resets == 0 {
			t.Fatalf("stats: swallowed %d, resets %d; want both > 0", swallowed, resets)
		}
	})
	t.Run("Hang", func(t *testing.T) {
		srv, p := start(t)
		c := dial(t, p, 300*time.Millisecond)
		p.DropReplies(false)
		_, err := c.Do("SET", "k", "hung")
		if !isTimeout(err) {
			t.Fatalf("SET with replies dropped: err = %v, want a timeout", err)
		}
		if got, want := get(t, srv, "k"), "hung"; got != want {
			t.Fatalf("GET k = %q, want %q", got, want)
		}
	})
}

// Half a request reaches the server: it runs nothing, and the client
// sees a reset.
func TestProxy_ResetMidRequest(t *testing.T) {
	srv, p := start(t)
	c := dial(t, p, 5*time.Second)
	p.ResetMidRequest()
	_, err := c.Do("SET", "k", strings.Repeat("x", 1000))
	if err == nil {
		t.Fatal("SET cut in half: no error")
	}
	if got := get(t, srv, "k"); got != "" {
		t.Fatalf("GET k = %d bytes, want nothing: half a command must not run", len(got))
	}
	// One cut per call: the next connection works.
	c2 := dial(t, p, 5*time.Second)
	if _, err := c2.Do("PING"); err != nil {
		t.Fatalf("PING after the cut: %v", err)
	}
}

func TestProxy_Bandwidth(t *testing.T) {
	_, p := start(t)
	c := dial(t, p, 30*time.Second)
	if _, err := c.Do("SET", "big", strings.Repeat("x", 40000)); err != nil {
		t.Fatal(err)
	}
	p.Bandwidth(40000)
	start := time.Now()
	v, err := redis.String(c.Do("GET", "big"))
	if err != nil || len(v) != 40000 {
		t.Fatalf("GET big through the throttle: %d bytes, %v", len(v), err)
	}
	// 40 kB at 40 kB/s cannot arrive in much less than a second; only
	// this lower bound is certain, whatever the machine's load.
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("40 kB at 40 kB/s took %s: not throttled", d)
	}
}

func TestProxy_CutAllAndRefuse(t *testing.T) {
	_, p := start(t)
	c := dial(t, p, 5*time.Second)
	if _, err := c.Do("PING"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, 5*time.Second, func() bool { return p.Open() == 1 }, "proxy never counted the connection")
	if n := p.CutAll(); n != 1 {
		t.Fatalf("CutAll reset %d connections, want 1", n)
	}
	if _, err := c.Do("PING"); err == nil {
		t.Fatal("PING on a cut connection: no error")
	}
	p.Refuse(true)
	if c2, err := redis.Dial("tcp", p.Addr, redis.DialReadTimeout(2*time.Second)); err == nil {
		_, err = c2.Do("PING")
		c2.Close()
		if err == nil {
			t.Fatal("PING while refusing: no error")
		}
	}
	p.Normal()
	c3 := dial(t, p, 5*time.Second)
	if _, err := c3.Do("PING"); err != nil {
		t.Fatalf("PING after Normal: %v", err)
	}
}

// TestProxy_Retarget: after Retarget, new connections reach the new
// server while an open one stays with the old.
func TestProxy_Retarget(t *testing.T) {
	a, p := start(t)
	b := redistest.Start(t)
	a.Do(t, "SET", "who", "a")
	b.Do(t, "SET", "who", "b")
	old := dial(t, p, 5*time.Second)
	// A reply means the proxy has dialled old's upstream: only then is
	// old "open" for Retarget.
	if _, err := old.Do("PING"); err != nil {
		t.Fatal(err)
	}
	p.Retarget(b.Addr)
	fresh := dial(t, p, 5*time.Second)
	for _, tc := range []struct {
		c    redis.Conn
		want string
	}{{old, "a"}, {fresh, "b"}} {
		if got, err := redis.String(tc.c.Do("GET", "who")); err != nil || got != tc.want {
			t.Errorf("GET who = %q, %v; want %q", got, err, tc.want)
		}
	}
}

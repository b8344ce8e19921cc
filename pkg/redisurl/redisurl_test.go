package redisurl_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/redisurl"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ backend, db, want string }{
		{"", "", ""},
		{"localhost:6380", "", "redis://localhost:6380"},
		{"localhost:6380", "2", "redis://localhost:6380/2"},
		{"redis-host", "", "redis://redis-host:6379"},
		{"redis://h:1/3", "5", "redis://h:1/3"},
	} {
		if got := redisurl.Normalize(tc.backend, tc.db); got != tc.want {
			t.Errorf("Normalize(%q, %q) = %q, want %q", tc.backend, tc.db, got, tc.want)
		}
	}
}

func TestRedacted(t *testing.T) {
	got := redisurl.Redacted("redis://user:s3cret@host:6379/1")
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "host:6379") {
		t.Errorf("Redacted = %q", got)
	}
}

func TestNewPool(t *testing.T) {
	for _, bad := range []string{"http://x", "redis://", "redis://h/notanumber", "unix://", "unix:///s?db=x", "::", "redis://h:1?read_timeout=x", "redis://h:1?read_timeout=0"} {
		if _, err := redisurl.NewPool(bad, redisurl.Options{}); err == nil {
			t.Errorf("NewPool(%q) accepted", bad)
		}
	}
	if _, err := redisurl.NewPool("redis://:hunter2@h:1/x", redisurl.Options{}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error must not leak the password: %v", err)
	}

	sock := filepath.Join(t.TempDir(), "r.sock")
	srv := redistest.Start(t, redistest.Args("--unixsocket", sock))
	for _, u := range []string{srv.URL() + "/3", "unix://" + sock + "?db=3"} {
		p, err := redisurl.NewPool(u, redisurl.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c := p.Get()
		if _, err := c.Do("SET", "k", u); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		c.Close()
		p.Close()
	}
	// Both URLs reached database 3 of the same server.
	c := srv.Pool(t).Get()
	defer c.Close()
	_, _ = c.Do("SELECT", 3)
	if got, _ := redis.String(c.Do("GET", "k")); !strings.HasPrefix(got, "unix://") {
		t.Errorf("db 3 holds %q", got)
	}
}

// read_timeout drops a connection whose reply takes longer; it is not
// passed on to the server as part of the URL.
func TestNewPool_ReadTimeout(t *testing.T) {
	srv := redistest.Start(t)
	for _, u := range []string{srv.URL() + "/2?read_timeout=300ms", "unix:///nonexistent.sock?read_timeout=1.5&db=1"} {
		if _, err := redisurl.NewPool(u, redisurl.Options{}); err != nil {
			t.Fatalf("NewPool(%q): %v", u, err)
		}
	}
	p, err := redisurl.NewPool(srv.URL()+"/2?read_timeout=300ms", redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := p.Get()
	defer c.Close()
	if _, err := c.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	// BLPOP on an empty list replies after 1s: past 300ms, the command fails.
	if _, err := c.Do("BLPOP", "empty", "1"); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("BLPOP empty 1 with read_timeout=300ms: err = %v, want a timeout", err)
	}
}

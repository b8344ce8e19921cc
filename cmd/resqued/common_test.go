package main

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/redisurl"
)

// withConnFlags runs f inside a cli.Context parsed from args with the
// connection flags, as every command gets them.
func withConnFlags(t *testing.T, args []string, f func(*cli.Context) error) error {
	t.Helper()
	app := &cli.App{Name: "resqued", Flags: connFlags(), Action: f, ExitErrHandler: func(*cli.Context, error) {}}
	return app.Run(append([]string{"resqued"}, args...))
}

// TestConnect_Namespace: "resque" and php-resque's "resque:" name the
// same keys; only one trailing colon is resqued's own.
func TestConnect_Namespace(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"", "resque"},
		{"resque", "resque"},
		{"resque:", "resque"},
		{"app:resque:", "app:resque"},
		{"app::", "app:"},
	} {
		var got string
		args := []string{}
		if tc.arg != "" {
			args = append(args, "--namespace", tc.arg)
		}
		err := withConnFlags(t, args, func(c *cli.Context) error {
			rc, err := connect(c, nil)
			if err == nil {
				got = rc.queue.Namespace()
				rc.Close()
			}
			return err
		})
		if err != nil || got != tc.want {
			t.Errorf("--namespace %q: connect = %q, %v; want %q", tc.arg, got, err, tc.want)
		}
	}
}

// TestConnect_BadURL: a URL that cannot name a server is a usage error
// with a hint, not a failure later.
func TestConnect_BadURL(t *testing.T) {
	err := withConnFlags(t, []string{"--redis", "ftp://nowhere"}, func(c *cli.Context) error {
		_, err := connect(c, nil)
		return err
	})
	var ue *usageError
	if !errors.As(err, &ue) || ue.hint == "" {
		t.Errorf("connect = %v, want a usage error with a hint", err)
	}
}

// TestRedisURL: --redis (REDIS_URL) wins over php-resque's REDIS_BACKEND
// and REDIS_BACKEND_DB, which win over the default.
func TestRedisURL(t *testing.T) {
	for _, tc := range []struct {
		name              string
		redisURL, backend string
		backendDB, flag   string
		want              string
	}{
		{name: "Default", want: redisurl.Default},
		{name: "Backend", backend: "cache:6380", backendDB: "2", want: redisurl.Normalize("cache:6380", "2")},
		{name: "EnvURL", redisURL: "redis://a:1/3", backend: "cache:6380", want: "redis://a:1/3"},
		{name: "Flag", redisURL: "redis://a:1/3", flag: "redis://b:2/4", want: "redis://b:2/4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("REDIS_URL", tc.redisURL)
			t.Setenv("REDIS_BACKEND", tc.backend)
			t.Setenv("REDIS_BACKEND_DB", tc.backendDB)
			var args []string
			if tc.flag != "" {
				args = []string{"--redis", tc.flag}
			}
			var got string
			if err := withConnFlags(t, args, func(c *cli.Context) error { got = redisURL(c); return nil }); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("redisURL = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestNewLogger_Level: Resque's VERBOSE and VVERBOSE count when set to
// anything at all, even empty or "false"; --log-level overrides them.
func TestNewLogger_Level(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want hclog.Level
	}{
		{name: "Default", want: hclog.Warn},
		{name: "VerboseFlag", args: []string{"-v"}, want: hclog.Info},
		{name: "VERBOSEEmpty", env: map[string]string{"VERBOSE": ""}, want: hclog.Info},
		{name: "LOGGINGFalse", env: map[string]string{"LOGGING": "false"}, want: hclog.Info},
		{name: "VVERBOSE", env: map[string]string{"VVERBOSE": "0"}, want: hclog.Debug},
		{name: "LogLevelWins", env: map[string]string{"VVERBOSE": "1"}, args: []string{"--log-level", "error"}, want: hclog.Error},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"VERBOSE", "LOGGING", "VVERBOSE", "RESQUED_LOG_LEVEL"} {
				if v, ok := tc.env[k]; ok {
					t.Setenv(k, v)
				} else {
					unsetenv(t, k)
				}
			}
			var got hclog.Level
			err := withConnFlags(t, tc.args, func(c *cli.Context) error {
				log, err := newLogger(c)
				if err == nil {
					got = log.GetLevel()
				}
				return err
			})
			if err != nil || got != tc.want {
				t.Errorf("level = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	for _, args := range [][]string{{"--log-level", "loud"}, {"--log-format", "xml"}} {
		err := withConnFlags(t, args, func(c *cli.Context) error { _, err := newLogger(c); return err })
		var ue *usageError
		if !errors.As(err, &ue) || ue.hint == "" {
			t.Errorf("%v: newLogger = %v, want a usage error with a hint", args, err)
		}
	}
}

// unsetenv unsets k for the rest of the test, restoring it afterwards.
func unsetenv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "") // records the old value for restoring
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}

// TestParseSeconds: Resque's seconds ("4", "0.5") and Go durations.
func TestParseSeconds(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"4": 4 * time.Second, " 0.5 ": 500 * time.Millisecond, "0": 0, "250ms": 250 * time.Millisecond, "1m": time.Minute,
	} {
		if got, err := parseSeconds(in); err != nil || got != want {
			t.Errorf("parseSeconds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "4 s"} {
		if got, err := parseSeconds(in); err == nil {
			t.Errorf("parseSeconds(%q) = %v, want an error", in, got)
		}
	}
}

package recurring

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/internal/testskip"
	"github.com/resqued/resqued/pkg/queue"
)

const realistic = `
# A schedule as resque-scheduler users write it.
clear_cache:
  cron: "0 * * * *"
  class: ClearCache
  queue: low
  args: all
  description: "Clears the cache every hour"

poll_feeds:
  every: ["30s", {first_in: "10s"}]
  class: Feeds::Poll
  queue: feeds
  args:
    - https://example.com/feed
    - 3

send_digest:
  every: 1d
  class: SendDigest
  queue: mail
  args:
    user_id: 7
    formats: [html, text]
  rails_env: production, staging

rotate:
  cron: "30 4 * * 1-5 Europe/Paris"
  class: Rotate
  queue: maintenance

hourly:
  cron: "@hourly"
  class: Hourly
  queue: low
  args:

weekly:
  every: "1w"
  class: Weekly
  queue: low
  args: [[1, 2], {a: null}]
`

func TestParseRealistic(t *testing.T) {
	s, err := Parse([]byte(realistic), "production")
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		name, class, queue, args, cron string
		every, firstIn                 time.Duration
		skip                           bool
	}
	wants := []want{
		{"clear_cache", "ClearCache", "low", `["all"]`, "0 * * * *", 0, 0, false},
		{"poll_feeds", "Feeds::Poll", "feeds", `["https://example.com/feed",3]`, "", 30 * time.Second, 10 * time.Second, false},
		{"send_digest", "SendDigest", "mail", `[{"formats":["html","text"],"user_id":7}]`, "", 24 * time.Hour, 0, false},
		{"rotate", "Rotate", "maintenance", `[]`, "30 4 * * 1-5 Europe/Paris", 0, 0, false},
		{"hourly", "Hourly", "low", `[]`, "@hourly", 0, 0, false},
		{"weekly", "Weekly", "low", `[[1,2],{"a":null}]`, "", 7 * 24 * time.Hour, 0, false},
	}
	if len(s.Entries) != len(wants) {
		t.Fatalf("got %d entries, want %d", len(s.Entries), len(wants))
	}
	for i, w := range wants {
		e := s.Entries[i]
		got := want{e.Name, e.Class, e.Queue, string(e.Args), e.Cron, e.Every, e.FirstIn, e.Skip}
		if got != w {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
	if d := s.Entries[0].Description; d != "Clears the cache every hour" {
		t.Errorf("description = %q", d)
	}
	// The rufus-style trailing time zone is honoured.
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		testskip.Skipf(t, "no tzdata: %v", err)
	}
	from := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) // a Friday
	if got, want := s.Entries[3].Next(from), time.Date(2026, 11, 30, 4, 30, 0, 0, paris); !got.Equal(want) {
		t.Errorf("rotate next = %v, want %v", got, want)
	}
}

func TestRailsEnv(t *testing.T) {
	for env, skip := range map[string]bool{"production": false, "staging": false, "development": true, "": true} {
		s, err := Parse([]byte(realistic), env)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Entries[2].Skip; got != skip {
			t.Errorf("env %q: send_digest skip = %v, want %v", env, got, skip)
		}
		if s.Entries[0].Skip {
			t.Errorf("env %q: an entry without rails_env is skipped", env)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	for _, doc := range []string{"", "# nothing yet\n", "---\n"} {
		s, err := Parse([]byte(doc), "")
		if err != nil || len(s.Entries) != 0 {
			t.Errorf("%q: %v, %v", doc, s, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"invalid yaml", "a: [\n", "not valid YAML"},
		{"top level list", "- a\n- b\n", "top level must map"},
		{"entry not mapping", "job: hello\n", `entry "job": line 1: must be a mapping`},
		{"duplicate entry", "job: {class: A, queue: q, every: 1s}\njob: {class: B, queue: q, every: 1s}\n", `entry "job" is defined twice`},
		{"missing class", "job:\n  queue: q\n  every: 1m\n", `entry "job": class is missing`},
		{"invalid class", "job:\n  class: ../evil\n  queue: q\n  every: 1m\n", `entry "job": class "../evil"`},
		{"class not string", "job:\n  class: [A]\n  queue: q\n  every: 1m\n", `entry "job": line 2: class must be a string`},
		{"missing queue", "job:\n  class: A\n  every: 1m\n", `entry "job": queue is missing`},
		{"invalid queue", "job:\n  class: A\n  queue: a:b\n  every: 1m\n", `entry "job": queue: queue name "a:b"`},
		{"no interval", "job:\n  class: A\n  queue: q\n", `entry "job": needs cron or every`},
		{"empty interval", "job:\n  class: A\n  queue: q\n  cron: ''\n", `entry "job": needs cron or every`},
		{"both", "job:\n  class: A\n  queue: q\n  cron: '* * * * *'\n  every: 1m\n", `entry "job": has both cron and every`},
		{"bad cron", "job:\n  class: A\n  queue: q\n  cron: '61 * * * *'\n", `entry "job": cron "61 * * * *"`},
		{"cron every", "job:\n  class: A\n  queue: q\n  cron: '@every 1m'\n", `entry "job": cron "@every 1m": @every is not a cron time`},
		{"cron options", "job:\n  class: A\n  queue: q\n  cron: ['* * * * *', {first_in: 1s}]\n", `entry "job": cron: options are not supported`},
		{"bad every", "job:\n  class: A\n  queue: q\n  every: soon\n", `entry "job": every: duration "soon"`},
		{"every too short", "job:\n  class: A\n  queue: q\n  every: 0s\n", `entry "job": every: duration "0s": must be at least 1s`},
		{"every fraction", "job:\n  class: A\n  queue: q\n  every: 1.5s\n", `entry "job": every: duration "1.5s": must be a whole number of seconds`},
		{"every map", "job:\n  class: A\n  queue: q\n  every: {first_in: 1s}\n", `entry "job": line 4: every must be a string or [string, {options}]`},
		{"bad first_in", "job:\n  class: A\n  queue: q\n  every: [1m, {first_in: later}]\n", `entry "job": every: first_in: duration "later"`},
		{"other option", "job:\n  class: A\n  queue: q\n  every: [1m, {first_at: '2026-01-01'}]\n", `entry "job": every: option "first_at" is not supported`},
		{"unknown field", "job:\n  class: A\n  queue: q\n  every: 1m\n  clas: B\n", `entry "job": line 5: unknown field "clas"`},
		{"custom job class", "job:\n  class: A\n  queue: q\n  every: 1m\n  custom_job_class: B\n", `entry "job": line 5: custom_job_class is not supported`},
		{"args nan", "job:\n  class: A\n  queue: q\n  every: 1m\n  args: [.nan]\n", `entry "job": args: NaN cannot be written as JSON`},
		{"field twice", "job:\n  class: A\n  class: B\n  queue: q\n  every: 1m\n", `entry "job": line 3: class is given twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc), "")
			if err == nil {
				t.Fatalf("no error for:\n%s", c.doc)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\ndoes not contain %q", err, c.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schedule.yml")
	if err := os.WriteFile(path, []byte(realistic), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path)
	if err != nil || len(s.Entries) != 6 {
		t.Fatalf("Load = %v, %v", s, err)
	}
	if err := os.WriteFile(path, []byte("job:\n  class: A\n  every: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `entry "job": queue is missing`) {
		t.Errorf("Load error = %v, want the path, entry and field", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yml")); err == nil {
		t.Error("no error for a missing file")
	}
}

func TestParseDuration(t *testing.T) {
	ok := map[string]time.Duration{
		"30s": 30 * time.Second, "5m": 5 * time.Minute, "1h": time.Hour, "1d": 24 * time.Hour,
		"1w": 7 * 24 * time.Hour, "2M": 60 * 24 * time.Hour, "1y": 365 * 24 * time.Hour,
		"1h30m": 90 * time.Minute, "90": 90 * time.Second, " 10s ": 10 * time.Second, "0.5m": 30 * time.Second,
	}
	for in, want := range ok {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "s", "10x", "-5s", "1h 30m", "10 s", "5ms", "0", "0.2s", "90 1m", "1e3s"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestNextCron(t *testing.T) {
	s, err := Parse([]byte(`
every_minute: {cron: "* * * * *", class: A, queue: q}
top_of_hour: {cron: "0 * * * *", class: A, queue: q}
utc_daily: {cron: "CRON_TZ=UTC 15 3 * * *", class: A, queue: q}
with_seconds: {cron: "*/10 * * * * *", class: A, queue: q}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	at := func(h, m, sec, nsec int) time.Time { return time.Date(2026, 11, 27, h, m, sec, nsec, time.Local) }
	cases := []struct {
		entry     int
		now, want time.Time
	}{
		{0, at(12, 34, 56, 0), at(12, 35, 0, 0)},
		{0, at(12, 35, 0, 0), at(12, 36, 0, 0)}, // strictly after: a tick just fired is not due again
		{0, at(12, 34, 59, 999999999), at(12, 35, 0, 0)},
		{0, at(23, 59, 30, 0), time.Date(2026, 11, 28, 0, 0, 0, 0, time.Local)},
		{1, at(12, 34, 56, 0), at(13, 0, 0, 0)},
		{1, at(13, 0, 0, 0), at(14, 0, 0, 0)},
		{2, time.Date(2026, 11, 27, 3, 15, 0, 0, time.UTC), time.Date(2026, 11, 28, 3, 15, 0, 0, time.UTC)},
		{3, at(12, 34, 56, 0), at(12, 35, 0, 0)},
		{3, at(12, 35, 0, 0), at(12, 35, 10, 0)},
	}
	for _, c := range cases {
		if got := s.Entries[c.entry].Next(c.now); !got.Equal(c.want) {
			t.Errorf("%s: Next(%v) = %v, want %v", s.Entries[c.entry].Name, c.now, got, c.want)
		}
	}
}

func TestNextEvery(t *testing.T) {
	e := &Entry{Every: 30 * time.Second}
	cases := map[int64]int64{0: 30, 29: 30, 30: 60, 31: 60, -1: 0, -30: 0, -31: -30}
	for now, want := range cases {
		if got := e.Next(time.Unix(now, 0)); got.Unix() != want {
			t.Errorf("Next(%d) = %d, want %d", now, got.Unix(), want)
		}
	}
	if got := e.Next(time.Unix(29, 999999999)); got.Unix() != 30 {
		t.Errorf("Next(29.999) = %v", got.Unix())
	}
	// Daily ticks are at 00:00 UTC, whatever the local zone.
	d := &Entry{Every: 24 * time.Hour}
	from := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	if got, want := d.Next(from), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("daily Next = %v, want %v", got, want)
	}
}

// --- Run against a real Redis ---

type env struct {
	srv    *redistest.Server
	client *queue.Client
	ns     string
}

func newEnv(t *testing.T) *env {
	srv := redistest.Start(t)
	ns := "resque"
	return &env{srv: srv, client: queue.New(srv.Pool(t), ns), ns: ns}
}

func (e *env) jobs(t *testing.T, q string) []*queue.Job {
	t.Helper()
	raw, err := redis.ByteSlices(e.srv.Do(t, "LRANGE", queue.QueueKey(e.ns, q), 0, -1), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []*queue.Job
	for _, p := range raw {
		j, err := queue.Decode(q, p)
		if err != nil {
			t.Fatalf("job %s: %v", p, err)
		}
		out = append(out, j)
	}
	return out
}

func (e *env) size(t *testing.T, q string) int {
	n, _ := redis.Int(e.srv.Do(t, "LLEN", queue.QueueKey(e.ns, q)), nil)
	return n
}

func (e *env) lockKeys(t *testing.T, name string) []string {
	keys, err := redis.Strings(e.srv.Do(t, "KEYS", e.ns+":resqued:schedule:"+name+":*"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func quietLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Trace})
}

// tickLog records every push, from any number of concurrent Runs.
type tickLog struct {
	mu       sync.Mutex
	counts   map[int64]int // pushes per tick
	attempts int           // pushes and ticks lost to another Run
}

func (l *tickLog) hook(_ *Entry, tick time.Time, pushed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts++
	if !pushed {
		return
	}
	if l.counts == nil {
		l.counts = map[int64]int{}
	}
	l.counts[tick.Unix()]++
}

func (l *tickLog) tries() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts
}

func (l *tickLog) snapshot() map[int64]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[int64]int{}
	for k, v := range l.counts {
		m[k] = v
	}
	return m
}

func mustParse(t *testing.T, doc string) *Schedule {
	t.Helper()
	s, err := Parse([]byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runAll(ctx context.Context, s *Schedule, client *queue.Client, n int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Run(ctx, client, quietLogger())
		}()
	}
	return &wg
}

func TestRunEverySecond(t *testing.T) {
	e := newEnv(t)
	s := mustParse(t, `ping: {every: 1s, class: "Ping::Job", queue: pings, args: [{"n": 1}, x]}`)
	var log tickLog
	s.onFire = log.hook
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	runAll(ctx, s, e.client, 1).Wait()
	end := time.Now()

	jobs := e.jobs(t, "pings")
	// Ticks are whole seconds in (start, end]: 2 or 3 of them in 2.5 s.
	if len(jobs) < 2 || len(jobs) > 3 {
		t.Fatalf("%d jobs in %s (from %v to %v), want 2 or 3", len(jobs), end.Sub(start), start, end)
	}
	ids := map[string]bool{}
	for _, j := range jobs {
		if j.Class != "Ping::Job" || string(j.Args) != `[{"n":1},"x"]` || len(j.ID) != 32 || ids[j.ID] {
			t.Errorf("job %s", j.Payload)
		}
		ids[j.ID] = true
	}
	ticks := log.snapshot()
	if len(ticks) != len(jobs) {
		t.Errorf("%d jobs for ticks %v", len(jobs), ticks)
	}
	for tick := range ticks {
		if ticks[tick-1] == 0 && ticks[tick+1] == 0 {
			t.Errorf("tick %d is not next to another: %v", tick, ticks)
		}
		if tick <= start.Unix() || tick > end.Unix() {
			t.Errorf("tick %d outside (%d, %d]", tick, start.Unix(), end.Unix())
		}
	}
	if len(e.lockKeys(t, "ping")) != len(jobs) {
		t.Errorf("lock keys %v for %d jobs", e.lockKeys(t, "ping"), len(jobs))
	}
	ttl, _ := redis.Int(e.srv.Do(t, "TTL", e.lockKeys(t, "ping")[0]), nil)
	if ttl < 3500 || ttl > 3600 {
		t.Errorf("lock TTL %d, want about 3600", ttl)
	}
}

func TestRunThreeDaemonsOncePerTick(t *testing.T) {
	e := newEnv(t)
	s := mustParse(t, `beat: {every: 1s, class: Beat, queue: beats}`)
	var log tickLog
	s.onFire = log.hook
	ctx, cancel := context.WithCancel(context.Background())
	wg := runAll(ctx, s, e.client, 3)
	redistest.Eventually(t, 10*time.Second, func() bool { return e.size(t, "beats") >= 3 }, "3 jobs")
	cancel()
	wg.Wait()

	ticks := log.snapshot()
	n := e.size(t, "beats")
	for tick, c := range ticks {
		if c != 1 {
			t.Errorf("tick %d enqueued %d times", tick, c)
		}
	}
	if n != len(ticks) {
		t.Errorf("%d jobs for %d distinct ticks %v", n, len(ticks), ticks)
	}
	locks := e.lockKeys(t, "beat")
	if len(locks) != n {
		t.Errorf("%d jobs but lock keys %v", n, locks)
	}
	for _, k := range locks {
		v, _ := redis.String(e.srv.Do(t, "GET", k), nil)
		host, _ := os.Hostname()
		if !strings.HasPrefix(v, host+":") {
			t.Errorf("lock %s holds %q, want host:pid:run", k, v)
		}
	}
}

func TestRunFirstInOnceAcrossDaemons(t *testing.T) {
	e := newEnv(t)
	// Hourly ticks are far away; first_in makes one run soon after start,
	// and three daemons starting together make one run, not three.
	s := mustParse(t, `report: {every: ["1h", {first_in: "1s"}], class: Report, queue: reports, args: 5}`)
	var log tickLog
	s.onFire = log.hook
	hour := time.Now().Unix() / 3600
	skipAtHour := func() {
		if time.Now().Unix()/3600 != hour {
			t.Skip("crossed an hour boundary, where a regular tick adds a job")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wg := runAll(ctx, s, e.client, 3)
	redistest.Eventually(t, 10*time.Second, func() bool { return e.size(t, "reports") >= 1 }, "first_in run")
	// Wait for all three daemons to have made their attempt.
	redistest.Eventually(t, 5*time.Second, func() bool { return log.tries() == 3 }, "three attempts")
	cancel()
	wg.Wait()
	if n := e.size(t, "reports"); n != 1 {
		skipAtHour()
		t.Fatalf("%d jobs, want 1", n)
	}
	j := e.jobs(t, "reports")[0]
	if string(j.Args) != "[5]" {
		t.Errorf("args %s", j.Args)
	}
	// The run stands for the current hour's tick.
	for tick := range log.snapshot() {
		if tick%3600 != 0 || tick > time.Now().Unix() {
			t.Errorf("first_in run claimed tick %d, want the current hour", tick)
		}
	}
	// A daemon started later in the same hour does not run it again.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel2()
	runAll(ctx2, s, e.client, 1).Wait()
	if n := e.size(t, "reports"); n != 1 {
		skipAtHour()
		t.Errorf("%d jobs after a restart, want 1", n)
	}
}

func TestRunSkipsRailsEnv(t *testing.T) {
	e := newEnv(t)
	s, err := Parse([]byte(`dev: {every: 1s, class: A, queue: devq, rails_env: development}`), "production")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	runAll(ctx, s, e.client, 1).Wait()
	if n := e.size(t, "devq"); n != 0 {
		t.Errorf("%d jobs from a skipped entry", n)
	}
}

func TestArgsJSONForms(t *testing.T) {
	for doc, want := range map[string]string{
		"args: 1":                    `[1]`,
		"args: hello":                `["hello"]`,
		"args: [1, two]":             `[1,"two"]`,
		"args: {a: 1}":               `[{"a":1}]`,
		"args: {1: x}":               `[{"1":"x"}]`,
		"args: []":                   `[]`,
		"args: ~":                    `[]`,
		"args: '<b>&'":               `["<b>&"]`,
		"args: [{a: [true, 1.5]}]":   `[{"a":[true,1.5]}]`,
		"args: 2026-11-27T10:00:00Z": `["2026-11-27T10:00:00Z"]`,
	} {
		s, err := Parse([]byte("j:\n  class: A\n  queue: q\n  every: 1m\n  "+doc+"\n"), "")
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		var v interface{}
		if got := string(s.Entries[0].Args); got != want || json.Unmarshal(s.Entries[0].Args, &v) != nil {
			t.Errorf("%s: args %s, want %s", doc, got, want)
		}
	}
}

package web_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/internal/resquetest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
	"github.com/resqued/resqued/pkg/web"
)

const (
	ns         = "resque"
	busyWorker = resquetest.BusyWorker
	idleWorker = resquetest.IdleWorker
	pausedWkr  = resquetest.PausedWorker
	busyJob    = resquetest.BusyJob
	failure0   = `{"failed_at":"2026/11/27 09:00:00 UTC","payload":{"class":"<script>alert(1)</script>","args":["<script>alert(2)</script>"]},"exception":"RuntimeError","error":"boom <b>","backtrace":["stderr line one","stderr tail"],"worker":"vm:4242:high,low","queue":"high"}`
	failure1   = `{"failed_at":"2026/11/27 09:01:00 UTC","payload":{"class":"Mailer","args":[1]},"exception":"Resque::DirtyExit","error":"killed","backtrace":[],"worker":"vm:4243:*","queue":"mail"}`
)

type env struct {
	srv  *redistest.Server
	ts   *httptest.Server
	pool *redis.Pool
}

func start(t *testing.T, auth string) *env {
	t.Helper()
	return startWith(t, func(c *web.Config) { c.Auth = auth })
}

// startWith seeds a server and serves the dashboard with the Config
// that configure adjusts.
func startWith(t *testing.T, configure func(*web.Config)) *env {
	t.Helper()
	srv := redistest.Start(t)
	srv.Do(t, "RPUSH", queue.FailedKey(ns), failure0, failure1)
	for _, j := range []struct{ q, p string }{
		{"high", `{"class":"A","args":[]}`},
		{"high", `{"class":"<script>alert(3)</script>","args":["<script>alert(4)</script>"]}`},
		{"low", `{"class":"B","args":[]}`},
	} {
		srv.Do(t, "SADD", queue.QueuesKey(ns), j.q)
		srv.Do(t, "RPUSH", queue.QueueKey(ns, j.q), j.p)
	}
	srv.Do(t, "SADD", queue.QueuesKey(ns), "empty")
	srv.Do(t, "SET", queue.StatKey(ns, "processed"), 10)
	srv.Do(t, "SET", queue.StatKey(ns, "failed"), 2)
	resquetest.SeedWorkers(t, srv, ns)
	// A delayed job, as resque-scheduler stores it.
	srv.Do(t, "ZADD", queue.DelayedScheduleKey(ns), 1900000000, 1900000000)
	srv.Do(t, "RPUSH", queue.DelayedKey(ns, 1900000000), `{"class":"Later","args":["x"],"queue":"low"}`)
	// A tracked status with detail.
	srv.Do(t, "SET", status.Key(ns, "tok123"), `{"status":2,"updated":1800000000,"started":1800000000,"progress":0.5,"message":"half <i>way</i>"}`)

	pool := srv.Pool(t)
	cfg := web.Config{
		Queue:  queue.New(pool, ns),
		Status: status.New(pool, ns),
	}
	configure(&cfg)
	h := web.New(cfg)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &env{srv: srv, ts: ts, pool: pool}
}

func get(t *testing.T, e *env, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(e.ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustGet(t *testing.T, e *env, path string, want ...string) string {
	t.Helper()
	code, body := get(t, e, path)
	if code != 200 {
		t.Fatalf("GET %s: %d\n%s", path, code, body)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("GET %s: no %q in\n%s", path, w, body)
		}
	}
	return body
}

func noScript(t *testing.T, path, body string) {
	t.Helper()
	if strings.Contains(body, "<script>alert") {
		t.Errorf("GET %s: unescaped <script> from Redis:\n%s", path, body)
	}
}

func TestPages(t *testing.T) {
	e := start(t, "")
	for _, c := range []struct {
		path string
		want []string
	}{
		{"/", []string{"<nav", "10", "processed", "high", "low", "empty", busyWorker, "working", "paused", "Archive"}},
		{"/queues", []string{`href="/queues/high"`, "empty"}},
		{"/queues/high", []string{"2 jobs waiting", ">A<", "&lt;script&gt;alert(3)&lt;/script&gt;", "&lt;script&gt;alert(4)"}},
		{"/queues/high?start=1&count=1", []string{"&lt;script&gt;alert(3)", `newer`}},
		{"/workers", []string{busyWorker, idleWorker, pausedWkr, ">vm<", "4242", "Archive on high", "2026-11-27T08:51:00", "paused", "idle"}},
		{"/failed", []string{"2 failure records", "RuntimeError", "boom &lt;b&gt;", "stderr tail", "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;script&gt;alert(2)", "Mailer", "Retry all", "Clear all", `name="csrf"`}},
		{"/failed?queue=mail", []string{"Mailer"}},
		{"/failed?start=1&count=1", []string{"Mailer", "previous"}},
		{"/delayed", []string{"Later", "low", "2030-03-17"}},
		{"/status", []string{`name="token"`}},
		{"/status?token=tok123", []string{"running", "0.5", "half &lt;i&gt;way&lt;/i&gt;"}},
		{"/status?token=nope", []string{"no status for token nope"}},
		{"/static/style.css", []string{"nav.top"}},
		{"/static/live.js", []string{"fragment=1"}},
	} {
		body := mustGet(t, e, c.path, c.want...)
		noScript(t, c.path, body)
	}
	if body := mustGet(t, e, "/failed?queue=mail"); strings.Contains(body, "RuntimeError") {
		t.Errorf("queue filter kept a high failure")
	}
	if body := mustGet(t, e, "/failed?class=Mailer"); strings.Contains(body, "RuntimeError") || !strings.Contains(body, "Mailer") {
		t.Errorf("class filter: %s", body)
	}
	if body := mustGet(t, e, "/failed?start=1&count=1"); strings.Contains(body, "RuntimeError") {
		t.Errorf("paging showed index 0")
	}
	if code, _ := get(t, e, "/nowhere"); code != 404 {
		t.Errorf("GET /nowhere: %d", code)
	}
}

func TestFragment(t *testing.T) {
	e := start(t, "")
	for _, p := range []string{"/", "/queues", "/workers", "/failed", "/delayed", "/queues/high"} {
		body := mustGet(t, e, p+map[bool]string{true: "&", false: "?"}[strings.Contains(p, "?")]+"fragment=1", "<table")
		for _, bad := range []string{"<html", "<nav", "<head", "<h1"} {
			if strings.Contains(body, bad) {
				t.Errorf("fragment %s has %s:\n%s", p, bad, body)
			}
		}
		noScript(t, p, body)
	}
	mustGet(t, e, "/failed", `data-live="/failed"`)
	// The fragment's forms send the user back to the page, not the fragment.
	if body := mustGet(t, e, "/failed?queue=high&fragment=1", `name="back" value="/failed?queue=high"`); strings.Contains(body, "fragment=1") {
		t.Errorf("fragment links back to itself:\n%s", body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func token(t *testing.T, e *env) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(mustGet(t, e, "/failed"))
	if m == nil {
		t.Fatal("no CSRF token on /failed")
	}
	return m[1]
}

func post(t *testing.T, e *env, path string, form url.Values, hdr map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) state(t *testing.T) (high int, failed []string) {
	t.Helper()
	conn := e.pool.Get()
	defer conn.Close()
	high, _ = redis.Int(conn.Do("LLEN", queue.QueueKey(ns, "high")))
	failed, _ = redis.Strings(conn.Do("LRANGE", queue.FailedKey(ns), 0, -1))
	return high, failed
}

func TestRetryNeedsCSRF(t *testing.T) {
	e := start(t, "")
	tok := token(t, e)
	high0, failed0 := e.state(t)
	unchanged := func(what string) {
		t.Helper()
		high, failed := e.state(t)
		if high != high0 || strings.Join(failed, "\n") != strings.Join(failed0, "\n") {
			t.Errorf("%s changed Redis", what)
		}
	}
	if c := post(t, e, "/failed/retry", url.Values{"index": {"0"}}, nil); c != 403 {
		t.Errorf("POST retry without token: %d, want 403", c)
	}
	unchanged("POST without token")
	if c := post(t, e, "/failed/retry", url.Values{"index": {"0"}, "csrf": {strings.Repeat("0", len(tok))}}, nil); c != 403 {
		t.Errorf("POST retry with wrong token: %d, want 403", c)
	}
	unchanged("POST with wrong token")
	if c := post(t, e, "/failed/clear", url.Values{"csrf": {tok}}, map[string]string{"Origin": "http://evil.example"}); c != 403 {
		t.Errorf("POST clear from another origin: %d, want 403", c)
	}
	unchanged("cross-origin POST")
	for _, p := range []string{"/failed/retry?index=0&csrf=" + tok, "/failed/remove?index=0&csrf=" + tok, "/failed/clear?csrf=" + tok, "/failed/retry-all?csrf=" + tok} {
		if code, _ := get(t, e, p); code == 200 || code < 400 {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	unchanged("GET")

	if c := post(t, e, "/failed/retry", url.Values{"index": {"0"}, "csrf": {tok}, "back": {"/failed?start=0"}}, map[string]string{"Origin": e.ts.URL}); c != http.StatusSeeOther {
		t.Fatalf("POST retry with token: %d, want 303", c)
	}
	high, failed := e.state(t)
	if high != high0+1 {
		t.Errorf("high has %d jobs, want %d", high, high0+1)
	}
	if len(failed) != 2 || !strings.Contains(failed[0], `"retried_at":"`) || strings.Contains(failed[1], "retried_at") {
		t.Errorf("failed list after retry: %q", failed)
	}
	conn := e.pool.Get()
	last, _ := redis.String(conn.Do("LINDEX", queue.QueueKey(ns, "high"), -1))
	conn.Close()
	if last != `{"class":"<script>alert(1)</script>","args":["<script>alert(2)</script>"]}` {
		t.Errorf("re-enqueued %q", last)
	}
	mustGet(t, e, "/failed", "retried 20")

	if c := post(t, e, "/failed/remove", url.Values{"index": {"1"}, "csrf": {tok}}, nil); c != http.StatusSeeOther {
		t.Fatalf("POST remove: %d", c)
	}
	if _, failed := e.state(t); len(failed) != 1 || strings.Contains(failed[0], "Mailer") {
		t.Errorf("failed list after remove: %q", failed)
	}
	if c := post(t, e, "/failed/remove", url.Values{"index": {"7"}, "csrf": {tok}}, nil); c != 404 {
		t.Errorf("POST remove past the end: %d, want 404", c)
	}
	if c := post(t, e, "/failed/retry-all", url.Values{"csrf": {tok}}, nil); c != http.StatusSeeOther {
		t.Fatalf("POST retry-all: %d", c)
	}
	if high, _ := e.state(t); high != high0+2 {
		t.Errorf("after retry-all high has %d, want %d", high, high0+2)
	}
	if c := post(t, e, "/failed/clear", url.Values{"csrf": {tok}}, nil); c != http.StatusSeeOther {
		t.Fatalf("POST clear: %d", c)
	}
	if _, failed := e.state(t); len(failed) != 0 {
		t.Errorf("failed list after clear: %q", failed)
	}
}

func TestBasicAuth(t *testing.T) {
	e := start(t, "admin:s3cret")
	for _, p := range []string{"/", "/failed", "/static/style.css", "/status?token=tok123"} {
		resp, err := http.Get(e.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("GET %s without auth: %d %q", p, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	try := func(user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/failed", nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := try("admin", "wrong"); c != 401 {
		t.Errorf("wrong password: %d", c)
	}
	if c := try("admin", "s3cret"); c != 200 {
		t.Errorf("right password: %d", c)
	}
	// A POST without auth is refused before anything else.
	if c := post(t, e, "/failed/clear", url.Values{}, nil); c != 401 {
		t.Errorf("POST without auth: %d", c)
	}
}

// With the handlers config's limits, the Workers page shows each one:
// slots held of the configured value, jobs of the class waiting.
func TestWorkersPage_Limits(t *testing.T) {
	lim := queue.NewLimits(map[string]queue.ClassLimit{"A": {Concurrency: 3}, "B": {Rate: 10, Per: time.Second}}).WithQueues(map[string]int{"reports": 2})
	e := startWith(t, func(c *web.Config) { c.Limits = lim })
	e.srv.Do(t, "ZADD", queue.ConcurrencyKey(ns, "A"), 9999999999999, "h:1:q:abc")
	e.srv.Do(t, "ZADD", queue.QueueConcurrencyKey(ns, "reports"), 9999999999999, "h:1:q:abc")
	body := mustGet(t, e, "/workers", "<h2>Limits</h2>", "10 per 1s")
	for _, re := range []string{`<td>A</td>\s*<td class="num">1</td><td class="num">3</td>`, `<td>B</td>`, `<td>queue:reports</td>\s*<td class="num">1</td><td class="num">2</td>`} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("workers page lacks %s:\n%s", re, body)
		}
	}
	if body := mustGet(t, start(t, ""), "/workers"); strings.Contains(body, "<h2>Limits</h2>") {
		t.Error("limits shown without a handlers config")
	}
}

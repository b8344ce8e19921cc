package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/historytest"
	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/internal/resquetest"
	"github.com/resqued/resqued/internal/testskip"
	"github.com/resqued/resqued/pkg/queue"
)

// TestBrowser_Dashboard drives the dashboard in headless Chromium: the
// overview shows a worker and a failed job; on the Failed page the job is
// retried (it goes back on its queue) and then removed, and the failure is
// gone. Screenshots of each step land in $RESQUED_ARTIFACTS (or the test's
// temp dir).
func TestBrowser_Dashboard(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		testskip.Skipf(t, "chromium not installed (apt-get install -y chromium): skipping the browser test")
	}
	t.Parallel()
	srv := seedAdmin(t) // two failures, queues, three workers
	// The dashboard's history: a few hundred jobs over the last hours'
	// simulated minutes, on two queues and three classes, some failing
	// (Report got slow and started failing: it must stand out), queue
	// samples, and the three workers' last 10 minutes.
	hq := queue.New(srv.Pool(t), ns)
	seed := historytest.Seed(t, hq, time.Now(), []string{busyWorker, resquetest.IdleWorker, resquetest.PausedWorker})
	// And the minute under way, which the charts draw once it is over:
	// if it turns during the test, they still show 60 seeded minutes.
	seed.Extend(t, hq)
	port := freePort(t)
	web := exec.Command(resqued, "web", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	web.Env = append(os.Environ(), "REDIS_URL="+srv.URL())
	if err := web.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { web.Process.Kill(); web.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	redistest.Eventually(t, 30*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "dashboard never listened")

	artifacts := os.Getenv("RESQUED_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	os.MkdirAll(artifacts, 0o755)
	// Chromium's helper processes can still write to the profile for a
	// moment after the browser itself exits, which made t.TempDir's own
	// removal fail the test ("directory not empty"). The profile is
	// removed once nothing writes to it any more.
	profile, err := os.MkdirTemp("", "resqued-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		redistest.Eventually(t, 30*time.Second, func() bool { return os.RemoveAll(profile) == nil },
			"chromium's profile %s could not be removed", profile)
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 800),
		// chromedp waits 20 s for the browser to print its DevTools
		// address. On a clean CI machine, with the rest of e2e running
		// beside it, Chromium's first start (building its font cache)
		// took longer than that and failed the test before it began.
		chromedp.WSURLReadTimeout(2*time.Minute))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute) // includes the browser's start
	defer cancelT()
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var buf []byte
			if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil { // quality 100: PNG
				return err
			}
			return os.WriteFile(filepath.Join(artifacts, name+".png"), buf, 0o644)
		})
	}

	submit := func(action string, index int) chromedp.Action {
		var ok bool
		return chromedp.ActionFunc(func(ctx context.Context) error {
			// Mark this page, click, then wait for the page the form's
			// POST and redirect lead to (the mark is gone there).
			js := fmt.Sprintf(`(() => { window.__before = true; for (const f of document.querySelectorAll('form[action="%s"]')) {
				if (f.querySelector('input[name="index"]').value === '%d') { f.querySelector('button').click(); return true } }
				return false })()`, action, index)
			if err := chromedp.Evaluate(js, &ok).Do(ctx); err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no %s button for record %d", action, index)
			}
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
				var arrived bool
				if err := chromedp.Evaluate(`window.__before === undefined && document.readyState === 'complete'`, &arrived).Do(ctx); err == nil && arrived {
					return nil
				}
				time.Sleep(20 * time.Millisecond) // polling the page, not waiting blindly
			}
			return fmt.Errorf("%s: the page did not load after the click", action)
		})
	}
	// The first failure has kept output (--keep-output), found from its
	// payload.
	kept := queue.Output{ID: queue.OutputID(failures(t, srv)[0].Payload), Outcome: "RuntimeError", At: time.Now(),
		Stdout: []string{"kept <stdout> line"}, Stderr: []string{"kept stderr line"}}
	if err := queue.New(srv.Pool(t), ns).KeepOutput(context.Background(), kept, queue.OutputOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	var overview, failedBefore, failedAfter, keptStdout, keptStderr string
	run := func(actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("browser: %v", err)
		}
	}
	failedLen := func() int {
		n, _ := redis.Int(srv.Do(t, "LLEN", queue.FailedKey(ns)), nil)
		return n
	}
	run(chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("table", chromedp.ByQuery),
		chromedp.Text("body", &overview, chromedp.ByQuery),
		shot("overview"),
		chromedp.Navigate(base+"/failed"),
		chromedp.WaitVisible("table", chromedp.ByQuery),
		chromedp.Text("body", &failedBefore, chromedp.ByQuery),
		shot("failed"),
		chromedp.Click("details.output summary", chromedp.ByQuery),
		chromedp.WaitVisible("details.output pre.stdout", chromedp.ByQuery),
		chromedp.Text("details.output pre.stdout", &keptStdout, chromedp.ByQuery),
		chromedp.Text("details.output pre.stderr", &keptStderr, chromedp.ByQuery),
		shot("failed-kept-output"))
	if keptStdout != "kept <stdout> line" || keptStderr != "kept stderr line" {
		t.Errorf("kept output on the failed page: stdout %q, stderr %q", keptStdout, keptStderr)
	}
	// Every other page renders (and is photographed for a look).
	for _, page := range []string{"queues/high", "delayed", "status"} {
		run(chromedp.Navigate(base+"/"+page), chromedp.WaitVisible("h1", chromedp.ByQuery), shot(strings.ReplaceAll(page, "/", "-")))
	}
	checkCharts(t, ctx, base, hq, seed, run, shot)
	run(chromedp.Navigate(base+"/failed"), chromedp.WaitVisible("table", chromedp.ByQuery))
	// Retry record 1 (the Resize job on images) with its button: the job
	// goes back on its queue.
	run(submit("/failed/retry", 1))
	redistest.Eventually(t, 30*time.Second, func() bool {
		n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "images")), nil)
		return n == 1
	}, "retry from the browser did not re-enqueue the job")
	run(chromedp.WaitVisible("table", chromedp.ByQuery), shot("failed-after-retry"))
	// Remove it: the failure is gone from the page.
	run(submit("/failed/remove", 1))
	redistest.Eventually(t, 30*time.Second, func() bool { return failedLen() == 1 }, "remove from the browser did not remove the record")
	run(chromedp.WaitVisible("h1", chromedp.ByQuery),
		chromedp.Text("body", &failedAfter, chromedp.ByQuery),
		shot("failed-after-remove"))
	t.Logf("screenshots in %s", artifacts)
	if !strings.Contains(overview, busyWorker) {
		t.Errorf("overview does not show worker %s:\n%s", busyWorker, overview)
	}
	if !strings.Contains(failedBefore, "Resize") || !strings.Contains(failedBefore, "RuntimeError") {
		t.Errorf("failed page before:\n%s", failedBefore)
	}
	if strings.Contains(failedAfter, "Resize") {
		t.Errorf("the removed failure is still listed:\n%s", failedAfter)
	}
	// The retry put the job back on its queue, byte for byte.
	got, _ := redis.Strings(srv.Do(t, "LRANGE", queue.QueueKey(ns, "images"), 0, -1), nil)
	if len(got) != 1 || got[0] != oddPayload {
		t.Errorf("queue images after retry = %q, want the failed payload", got)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestWeb_FromDaemon: --web serves the dashboard, /metrics and /healthz
// from the daemon itself.
func TestWeb_FromDaemon(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	port := freePort(t)
	start(t, srv, dir, "--queues", "q", "--web", fmt.Sprintf("127.0.0.1:%d", port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	redistest.Eventually(t, 30*time.Second, func() bool {
		code, body := get("/workers")
		return code == 200 && strings.Contains(body, ":q")
	}, "the daemon's dashboard never showed its worker")
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "resque_processed_total") {
		t.Errorf("/metrics: %d %q", code, body)
	}
}

// TestWeb_DaemonHostAndAuth: the daemon's --web dashboard refuses a
// foreign Host (DNS rebinding) and puts /metrics behind --web-auth like
// every page; /healthz stays open for load balancers. RESQUED_WEB_HOST
// adds names, comma-separated.
func TestWeb_DaemonHostAndAuth(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	port := freePort(t)
	startEnv(t, srv, t.TempDir(), []string{"RESQUED_WEB_HOST=a.example, b.example:8443"}, "--queues", "q", "--web", fmt.Sprintf("127.0.0.1:%d", port), "--web-auth", "admin:s3cret")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	req := func(host, path string, auth bool) int {
		r, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if host != "" {
			r.Host = host
		}
		if auth {
			r.SetBasicAuth("admin", "s3cret")
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	redistest.Eventually(t, 30*time.Second, func() bool { return req("", "/healthz", false) == 200 }, "the daemon's dashboard never served /healthz")
	if c := req("", "/metrics", false); c != http.StatusUnauthorized {
		t.Errorf("/metrics without auth: %d, want 401", c)
	}
	if c := req("", "/metrics", true); c != 200 {
		t.Errorf("/metrics with auth: %d, want 200", c)
	}
	if c := req("attacker.example", "/failed", true); c != http.StatusMisdirectedRequest {
		t.Errorf("/failed with Host attacker.example: %d, want 421", c)
	}
	if c := req("attacker.example", "/metrics", true); c != http.StatusMisdirectedRequest {
		t.Errorf("/metrics with Host attacker.example: %d, want 421", c)
	}
	for _, host := range []string{fmt.Sprintf("localhost:%d", port), "a.example", "b.example:8443"} {
		if c := req(host, "/failed", true); c != 200 {
			t.Errorf("/failed with Host %s: %d, want 200", host, c)
		}
	}
	if c := req("b.example", "/failed", true); c != http.StatusMisdirectedRequest {
		t.Errorf("/failed with Host b.example (only :8443 named): %d, want 421", c)
	}
}

// TestWeb_WildcardListenNeedsWebHost: on 0.0.0.0 the dashboard names no
// host, so it answers to the loopback names and to --web-host only.
func TestWeb_WildcardListenNeedsWebHost(t *testing.T) {
	t.Parallel()
	srv := seedAdmin(t)
	port := freePort(t)
	web := exec.Command(resqued, "web", "--listen", fmt.Sprintf("0.0.0.0:%d", port), "--web-insecure", "--web-host", "dash.example", "--web-host", "10.9.9.9")
	web.Env = append(os.Environ(), "REDIS_URL="+srv.URL(), noRaceExitSleep)
	var out syncBuffer
	web.Stderr = &out
	if err := web.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = web.Process.Kill(); _ = web.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(host string) int {
		r, _ := http.NewRequest(http.MethodGet, base+"/failed", nil)
		r.Host = host
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	redistest.Eventually(t, 30*time.Second, func() bool { return get("127.0.0.1") == 200 }, "dashboard never served on 127.0.0.1: %s", &out)
	for host, want := range map[string]int{
		"localhost":                          200,
		"dash.example":                       200,
		fmt.Sprintf("dash.example:%d", port): 200,
		"10.9.9.9":                           200,
		"other.example":                      http.StatusMisdirectedRequest,
		"10.9.9.8":                           http.StatusMisdirectedRequest,
		"0.0.0.0":                            http.StatusMisdirectedRequest,
		"attacker.example":                   http.StatusMisdirectedRequest,
	} {
		if got := get(host); got != want {
			t.Errorf("GET /failed with Host %s: %d, want %d", host, got, want)
		}
	}
}

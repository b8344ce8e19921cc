package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/metricstest"
	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/internal/testskip"
	"github.com/resqued/resqued/pkg/queue"
)

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// httpGet returns the status and body of GET url, or 0 when it cannot
// connect.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lastBody prints the latest scrape when an Eventually gives up (its
// arguments are formatted only then).
type lastBody struct{ s *string }

func (b lastBody) String() string { return *b.s }

func TestMetrics_Daemon(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Fine", `exit 0`)
	handler(t, dir, "Boom", `echo boom >&2; exit 1`)
	push(t, srv, "jobs", `{"class":"Fine","args":[]}`)
	push(t, srv, "jobs", `{"class":"Boom","args":[]}`)
	// Again fails twice: its first attempt is retried, its second fails.
	handler(t, dir, "Again", `exit 75`)
	push(t, srv, "jobs", `{"class":"Again","args":[],"retry":{"attempts":2,"backoff":"fixed","delay":0.1}}`)
	addr := freeAddr(t)
	start(t, srv, dir, "--queues", "jobs", "--metrics", addr)
	base := "http://" + addr

	wants := []string{
		`resqued_job_duration_seconds_count{class="Fine",outcome="ok"} 1` + "\n",
		`resqued_job_duration_seconds_count{class="Boom",outcome="failed"} 1` + "\n",
		`resqued_job_duration_seconds_count{class="Again",outcome="retried"} 1` + "\n",
		`resqued_job_duration_seconds_count{class="Again",outcome="failed"} 1` + "\n",
		"resque_processed_total 4\n", // every run counts, retried ones too
		"resque_failed_total 2\n",
		`resque_queue_size{queue="jobs"} 0` + "\n",
		`resque_workers{state="idle"} 1` + "\n",
		"resqued_jobs_in_flight 0\n",
	}
	var body string
	redistest.Eventually(t, 60*time.Second, func() bool {
		var code int
		code, body = httpGet(t, base+"/metrics")
		if code != 200 {
			return false
		}
		for _, w := range wants {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	}, "GET /metrics never showed both jobs; last:\n%s", lastBody{&body})

	if code, got := httpGet(t, base+"/healthz"); code != 200 || got != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", code, got)
	}
	if code, _ := httpGet(t, base+"/"); code != http.StatusNotFound {
		t.Errorf("GET / = %d, want 404", code)
	}
}

// With --count the supervisor serves the Redis-side metrics and the health
// check; its workers, which inherit --metrics, must not try to bind too.
func TestMetrics_CountSupervisor(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Fine", `exit 0`)
	push(t, srv, "jobs", `{"class":"Fine","args":[]}`)
	addr := freeAddr(t)
	d := start(t, srv, dir, "--queues", "jobs", "--count", "2", "--metrics", addr)
	waitProcessed(t, srv, 1)
	base := "http://" + addr
	var body string
	redistest.Eventually(t, 30*time.Second, func() bool {
		var code int
		code, body = httpGet(t, base+"/metrics")
		return code == 200 && strings.Contains(body, "resque_processed_total 1\n") &&
			strings.Contains(body, `resque_workers{state="idle"} 2`+"\n")
	}, "GET /metrics from the supervisor; last:\n%s", lastBody{&body})
	if strings.Contains(body, "resqued_job_duration_seconds") {
		t.Errorf("supervisor exports job histograms:\n%s", body)
	}
	if code, got := httpGet(t, base+"/healthz"); code != 200 || got != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", code, got)
	}
	if strings.Contains(d.out.String(), "address already in use") {
		t.Errorf("a worker tried to bind --metrics:\n%s", d.out.String())
	}
}

// TestMetrics_Promtool: a real daemon's /metrics, with jobs waiting in
// several queues (a stamped one, php-resque's, a plain one, an empty
// one), a delayed job and a failure, reports each queue's latency and
// the backlog, and passes promtool check metrics without a word.
func TestMetrics_Promtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (apt-get install prometheus), and CI is set")
		}
		testskip.Skipf(t, "promtool not installed: apt-get install prometheus")
	}
	t.Parallel()
	srv := redistest.Start(t)
	dir := t.TempDir()
	handler(t, dir, "Boom", `echo boom >&2; exit 1`)
	push(t, srv, "jobs", `{"class":"Boom","args":[]}`)
	now := time.Now()
	push(t, srv, "stamped", fmt.Sprintf(`{"class":"A","args":[],"enqueued_at":%.6f}`, float64(now.Add(-30*time.Second).UnixMicro())/1e6))
	push(t, srv, "stamped", `{"class":"A","args":[2]}`)
	push(t, srv, "php", fmt.Sprintf(`{"class":"Echo","args":[{"n":1}],"id":"49cfcb79dae947c76d27007cd19ff419","prefix":"","queue_time":%d.852331}`, now.Add(-10*time.Minute).Unix()))
	push(t, srv, "plain", `{"class":"B","args":[]}`)
	srv.Do(t, "SADD", queue.QueuesKey(ns), "empty")
	// A delayed job a day from now, as resque-scheduler stores it.
	at := now.Add(24 * time.Hour).Unix()
	item := `{"class":"Report","args":["weekly"],"queue":"reports"}`
	srv.Do(t, "RPUSH", queue.DelayedKey(ns, at), item)
	srv.Do(t, "ZADD", queue.DelayedScheduleKey(ns), at, at)
	srv.Do(t, "SADD", queue.TimestampsKey(ns, item), queue.TimestampsEntry(at))
	addr := freeAddr(t)
	// Limits too: their series pass promtool as well.
	conf := writeConfig(t, "classes:\n  Report:\n    concurrency: 2\n    concurrency_key: args[0]\n  B:\n    rate: 10/s\n")
	start(t, srv, dir, "--queues", "jobs", "--metrics", addr, "--handlers-config", conf)

	wants := []string{
		`resqued_concurrency_limit{limit="Report"} 2` + "\n",
		`resqued_rate_limit{limit="B"} 10` + "\n",
		`resqued_limit_waiting{limit="B"} 1` + "\n",
		"resque_failed_jobs 1\n",
		"resque_delayed_jobs 1\n",
		"resque_delayed_timestamps 1\n",
		`resque_queue_size{queue="stamped"} 2` + "\n",
		`resque_queue_latency_seconds{queue="empty"} 0` + "\n",
		`resque_queue_latency_seconds{queue="jobs"} 0` + "\n",
		"resqued_jobs_cancelled_total 0\n",
		`resqued_jobs_limit_kills_total{limit="memory"} 0` + "\n",
	}
	var body string
	redistest.Eventually(t, 60*time.Second, func() bool {
		var code int
		code, body = httpGet(t, "http://"+addr+"/metrics")
		if code != 200 {
			return false
		}
		for _, w := range wants {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	}, "GET /metrics never showed the failure and the backlog; last:\n%s", lastBody{&body})
	for q, r := range map[string][2]float64{"stamped": {29, 300}, "php": {599, 900}, "plain": {0, 300}} {
		if v := metricstest.Value(t, body, `resque_queue_latency_seconds{queue="`+q+`"}`); v < r[0] || v > r[1] {
			t.Errorf("latency of %s = %v, want within %v", q, v, r)
		}
	}

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\non:\n%s", err, out, body)
	}
}

package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/metrics"
	"github.com/resqued/resqued/pkg/queue"
)

const ns = "resque"

// seed writes raw keys as Ruby Resque does: stats, three queues (one
// empty) and a busy, an idle and a paused worker.
func seed(t *testing.T, srv *redistest.Server) {
	t.Helper()
	srv.Do(t, "SADD", queue.QueuesKey(ns), "high", "low", "empty")
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "high"), `{"class":"A","args":[]}`, `{"class":"A","args":[2]}`)
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "low"), `{"class":"B","args":[]}`)
	srv.Do(t, "SET", queue.StatKey(ns, "processed"), 10)
	srv.Do(t, "SET", queue.StatKey(ns, "failed"), 2)
	busy, idle, paused := "host:1:high,low", "host:2:*", "host:3:low"
	for _, id := range []string{busy, idle, paused} {
		srv.Do(t, "SADD", queue.WorkersKey(ns), id)
		srv.Do(t, "SET", queue.WorkerStartedKey(ns, id), "2026-11-27 08:50:00 +0000")
	}
	srv.Do(t, "SET", queue.WorkerKey(ns, busy), `{"queue":"high","run_at":"2026-11-27T08:51:00Z","payload":{"class":"A","args":[]}}`)
	srv.Do(t, "SET", queue.WorkerKey(ns, paused), queue.PausedMarker("low", time.Date(2026, 11, 27, 8, 55, 0, 0, time.UTC)))
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestCollector(t *testing.T) {
	srv := redistest.Start(t)
	seed(t, srv)
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(queue.New(srv.Pool(t), ns)))
	body := scrape(t, metrics.Handler(reg))
	for _, want := range []string{
		"resque_processed_total 10\n",
		"resque_failed_total 2\n",
		`resque_queue_size{queue="high"} 2` + "\n",
		`resque_queue_size{queue="low"} 1` + "\n",
		`resque_queue_size{queue="empty"} 0` + "\n",
		`resque_workers{state="busy"} 1` + "\n",
		`resque_workers{state="idle"} 1` + "\n",
		`resque_workers{state="paused"} 1` + "\n",
		"resqued_redis_errors_total 0\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
	// The same through the client's own parser.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP resque_processed_total Jobs processed by all Resque workers (stat:processed).
# TYPE resque_processed_total counter
resque_processed_total 10
`), "resque_processed_total"); err != nil {
		t.Error(err)
	}

	srv.Stop()
	body = scrape(t, metrics.Handler(reg))
	if !strings.Contains(body, "resqued_redis_errors_total 1\n") || strings.Contains(body, "resque_processed_total") {
		t.Errorf("with redis down, want only an error counted:\n%s", body)
	}
}

func TestCollectorEmpty(t *testing.T) {
	srv := redistest.Start(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(queue.New(srv.Pool(t), ns)))
	body := scrape(t, metrics.Handler(reg))
	for _, want := range []string{"resque_processed_total 0\n", "resque_failed_total 0\n", `resque_workers{state="idle"} 0` + "\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
}

func TestJobs(t *testing.T) {
	reg := prometheus.NewRegistry()
	j := metrics.NewJobs(reg)
	okDone := j.Start("Mailer")
	failDone := j.Start("Mailer")
	checkInFlight(t, reg, "2")
	okDone(metrics.OutcomeOK)
	okDone(metrics.OutcomeOK) // ignored
	failDone(metrics.OutcomeFailed)
	j.Start("Other")(metrics.OutcomeRetried)
	checkInFlight(t, reg, "0")
	body := scrape(t, metrics.Handler(reg))
	for _, want := range []string{
		`resqued_job_duration_seconds_count{class="Mailer",outcome="ok"} 1` + "\n",
		`resqued_job_duration_seconds_count{class="Mailer",outcome="failed"} 1` + "\n",
		`resqued_job_duration_seconds_count{class="Other",outcome="retried"} 1` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
	var nilJobs *metrics.Jobs
	nilJobs.Start("X")(metrics.OutcomeOK) // a nil *Jobs records nothing
}

// checkInFlight compares the registered resqued_jobs_in_flight gauge.
func checkInFlight(t *testing.T, reg *prometheus.Registry, want string) {
	t.Helper()
	exp := "# HELP resqued_jobs_in_flight Jobs this process is running now.\n# TYPE resqued_jobs_in_flight gauge\nresqued_jobs_in_flight " + want + "\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "resqued_jobs_in_flight"); err != nil {
		t.Error(err)
	}
}

func TestHealthz(t *testing.T) {
	srv := redistest.Start(t)
	pool := srv.Pool(t)
	ts := httptest.NewServer(metrics.Mux(prometheus.NewRegistry(), queue.New(pool, "resque")))
	defer ts.Close()
	get := func() (int, string) {
		resp, err := http.Get(ts.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || body != "ok\n" {
		t.Fatalf("healthz with redis up = %d %q", code, body)
	}
	srv.Stop()
	start := time.Now()
	code, body := get()
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "redis: ") {
		t.Fatalf("healthz with redis down = %d %q", code, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("healthz took %v with redis down", d)
	}
}

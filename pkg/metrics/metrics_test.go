package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/metricstest"
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
	reg := metrics.NewRegistry()
	reg.Register(metrics.NewCollector(queue.New(srv.Pool(t), ns)))
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
		`resque_queue_paused{queue="high"} 0` + "\n",
		"# TYPE resqued_unique_locks gauge\nresqued_unique_locks 0\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
	// A paused queue (resque-pause's key, as PauseQueue writes it).
	if _, err := queue.New(srv.Pool(t), ns).PauseQueue(context.Background(), "low"); err != nil {
		t.Fatal(err)
	}
	body = scrape(t, metrics.Handler(reg))
	for _, want := range []string{`resque_queue_paused{queue="low"} 1` + "\n", `resque_queue_paused{queue="high"} 0` + "\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition with low paused lacks %q:\n%s", want, body)
		}
	}
	// A whole family, as Prometheus's text format wants it.
	if fam := "# HELP resque_processed_total Jobs processed by all Resque workers (stat:processed).\n# TYPE resque_processed_total counter\nresque_processed_total 10\n"; !strings.Contains(body, fam) {
		t.Errorf("exposition lacks %q:\n%s", fam, body)
	}

	srv.Stop()
	body = scrape(t, metrics.Handler(reg))
	if !strings.Contains(body, "resqued_redis_errors_total 1\n") || strings.Contains(body, "resque_processed_total") {
		t.Errorf("with redis down, want only an error counted:\n%s", body)
	}
}

func TestCollectorEmpty(t *testing.T) {
	srv := redistest.Start(t)
	reg := metrics.NewRegistry()
	reg.Register(metrics.NewCollector(queue.New(srv.Pool(t), ns)))
	body := scrape(t, metrics.Handler(reg))
	for _, want := range []string{"resque_processed_total 0\n", "resque_failed_total 0\n", `resque_workers{state="idle"} 0` + "\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
}

func TestJobs(t *testing.T) {
	reg := metrics.NewRegistry()
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
func checkInFlight(t *testing.T, reg *metrics.Registry, want string) {
	t.Helper()
	exp := "# HELP resqued_jobs_in_flight Jobs this process is running now.\n# TYPE resqued_jobs_in_flight gauge\nresqued_jobs_in_flight " + want + "\n"
	if body := scrape(t, metrics.Handler(reg)); !strings.Contains(body, exp) {
		t.Errorf("exposition lacks %q:\n%s", exp, body)
	}
}

func TestHealthz(t *testing.T) {
	srv := redistest.Start(t)
	pool := srv.Pool(t)
	ts := httptest.NewServer(metrics.Mux(metrics.NewRegistry(), queue.New(pool, "resque")))
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

// TestExposition: the histogram's cumulative buckets, +Inf, _sum and
// _count, label escaping, and the process metrics.
func TestExposition(t *testing.T) {
	reg := metrics.NewRegistry()
	j := metrics.NewJobs(reg)
	reg.Register(metrics.Process{})
	j.Start("Odd \"class\"\\\n")(metrics.OutcomeOK)
	body := scrape(t, metrics.Handler(reg))
	lbl := `class="Odd \"class\"\\\n",outcome="ok"`
	for _, want := range []string{
		"# TYPE resqued_job_duration_seconds histogram\n",
		"resqued_job_duration_seconds_bucket{" + lbl + `,le="0.005"} 1` + "\n",
		"resqued_job_duration_seconds_bucket{" + lbl + `,le="900"} 1` + "\n",
		"resqued_job_duration_seconds_bucket{" + lbl + `,le="+Inf"} 1` + "\n",
		"resqued_job_duration_seconds_count{" + lbl + "} 1\n",
		"resqued_job_duration_seconds_sum{" + lbl + "} ",
		"# TYPE go_goroutines gauge\ngo_goroutines ",
		"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ",
		"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
}

// TestCollectorBacklog: queue latency (enqueued_at, php-resque's
// queue_time, first seen, empty), delayed jobs and the failed list.
func TestCollectorBacklog(t *testing.T) {
	srv := redistest.Start(t)
	now := time.Now()
	srv.Do(t, "SADD", queue.QueuesKey(ns), "stamped", "php", "plain", "empty")
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "stamped"), fmt.Sprintf(`{"class":"A","args":[],"enqueued_at":%d}`, now.Add(-30*time.Second).Unix()))
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "php"), fmt.Sprintf(`{"class":"Echo","args":[{}],"id":"49cf","prefix":"","queue_time":%d.25}`, now.Add(-time.Hour).Unix()))
	srv.Do(t, "RPUSH", queue.QueueKey(ns, "plain"), `{"class":"B","args":[]}`)
	for _, ts := range []int64{1900000000, 1900000060} {
		srv.Do(t, "RPUSH", queue.DelayedKey(ns, ts), `{"class":"C","args":[],"queue":"plain"}`, `{"class":"C","args":[1],"queue":"plain"}`)
		srv.Do(t, "ZADD", queue.DelayedScheduleKey(ns), ts, ts)
	}
	srv.Do(t, "RPUSH", queue.FailedKey(ns), `{"failed_at":"2026-11-27 09:41:25 UTC","payload":{"class":"F","args":[]},"exception":"E","error":"e","queue":"q","worker":"w"}`)
	reg := metrics.NewRegistry()
	reg.Register(metrics.NewCollector(queue.New(srv.Pool(t), ns)))
	body := scrape(t, metrics.Handler(reg))
	for _, want := range []string{
		"# TYPE resque_queue_latency_seconds gauge\n",
		`resque_queue_latency_seconds{queue="empty"} 0` + "\n",
		"resque_delayed_jobs 4\n",
		"resque_delayed_timestamps 2\n",
		"resque_failed_jobs 1\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
	// Ranges, not our own timings: the stamps are 30 s and an hour old.
	for q, r := range map[string][2]float64{"stamped": {29, 300}, "php": {3599, 3900}, "plain": {0, 60}} {
		if v := metricstest.Value(t, body, `resque_queue_latency_seconds{queue="`+q+`"}`); v < r[0] || v > r[1] {
			t.Errorf("latency of %s = %v, want within %v", q, v, r)
		}
	}
}

func TestJobsFailed(t *testing.T) {
	reg := metrics.NewRegistry()
	j := metrics.NewJobs(reg)
	body := scrape(t, metrics.Handler(reg))
	for _, want := range []string{
		"# HELP resqued_jobs_cancelled_total Jobs this process stopped because they were cancelled.\n# TYPE resqued_jobs_cancelled_total counter\nresqued_jobs_cancelled_total 0\n",
		"# TYPE resqued_jobs_limit_kills_total counter\n",
		`resqued_jobs_limit_kills_total{limit="memory"} 0` + "\n",
		`resqued_jobs_limit_kills_total{limit="cpu"} 0` + "\n",
		`resqued_jobs_limit_kills_total{limit="output"} 0` + "\n",
		`resqued_jobs_limit_kills_total{limit="procs"} 0` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("before any failure, exposition lacks %q:\n%s", want, body)
		}
	}
	if want := "# TYPE resqued_unique_duplicates_total counter\nresqued_unique_duplicates_total 0\n"; !strings.Contains(body, want) {
		t.Errorf("before any failure, exposition lacks %q:\n%s", want, body)
	}
	for _, exc := range []string{"Resqued::Cancelled", "Resqued::Cancelled", "Resqued::MemoryLimit", "Resqued::CPULimit",
		"Resqued::OutputLimit", "Resqued::ProcessLimit", "Resqued::ProcessLimit", "Resque::DirtyExit", "Resqued::Timeout",
		"Resqued::DuplicateJob", "Resqued::DuplicateJob", "Resqued::DuplicateJob"} {
		j.Failed(exc)
	}
	body = scrape(t, metrics.Handler(reg))
	for _, want := range []string{
		"resqued_jobs_cancelled_total 2\n",
		`resqued_jobs_limit_kills_total{limit="memory"} 1` + "\n",
		`resqued_jobs_limit_kills_total{limit="cpu"} 1` + "\n",
		`resqued_jobs_limit_kills_total{limit="output"} 1` + "\n",
		`resqued_jobs_limit_kills_total{limit="procs"} 2` + "\n",
		"resqued_unique_duplicates_total 3\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
	var nilJobs *metrics.Jobs
	nilJobs.Failed("Resqued::Cancelled") // a nil *Jobs counts nothing
}

// The limits of the handlers config: slots in use and the configured
// value per limit, a rate limit's starts and hold-backs, jobs waiting.
func TestCollectorLimits(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	q := queue.New(srv.Pool(t), ns)
	lim := queue.NewLimits(map[string]queue.ClassLimit{"Slow": {Concurrency: 2}, "Mail": {Rate: 1, Per: time.Minute}}).WithQueues(map[string]int{"q": 5})
	for _, p := range []string{`{"class":"Slow","args":[1]}`, `{"class":"Slow","args":[2]}`, `{"class":"Mail","args":[3]}`, `{"class":"Mail","args":[4]}`} {
		if err := q.Enqueue(ctx, "q", []byte(p), queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f := q.Fetcher("h:1:q")
	defer f.Close()
	for i := 0; i < 3; i++ {
		r, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{Limits: lim})
		if err != nil {
			t.Fatalf("reserve %d: %v", i, err)
		}
		if err := r.Decode(); err != nil {
			t.Fatal(err)
		}
		if r.Class == "Slow" {
			// Keep the slot, let the next reserve take another job.
			srv.Do(t, "DEL", queue.WorkerKey(ns, "h:1:q"))
		} else if _, err := q.FinishJob(ctx, r, queue.Outcome{}); err != nil {
			t.Fatal(err)
		}
	}
	reg := metrics.NewRegistry()
	reg.Register(metrics.NewCollector(q).WithLimits(lim))
	body := scrape(t, metrics.Handler(reg))
	for _, want := range []string{
		`resqued_concurrency_limit{limit="Slow"} 2` + "\n",
		`resqued_concurrency_in_use{limit="Slow"} 2` + "\n",
		`resqued_rate_limit{limit="Mail"} 1` + "\n",
		`resqued_rate_period_seconds{limit="Mail"} 60` + "\n",
		`resqued_rate_started{limit="Mail"} 1` + "\n",
		`resqued_limit_waiting{limit="Mail"} 1` + "\n",
		`resqued_limit_waiting{limit="Slow"} 0` + "\n",
		// Queue q's own limit: every job taken from it holds a slot
		// (the finished Mail job's is never freed here).
		`resqued_concurrency_limit{limit="queue:q"} 5` + "\n",
		`resqued_concurrency_in_use{limit="queue:q"} 3` + "\n",
		`resqued_limit_waiting{limit="queue:q"} 1` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
	if !strings.Contains(body, `resqued_rate_limited_total{limit="Mail"} `) {
		t.Errorf("exposition lacks resqued_rate_limited_total:\n%s", body)
	}
}

// resqued_unique_locks counts the holders of resqued's unique locks
// (UniqueHolderKey), not resque-loner's bare "1" locks, nor another
// namespace's.
func TestCollectorUniqueLocks(t *testing.T) {
	srv := redistest.Start(t)
	c := queue.New(srv.Pool(t), ns)
	ctx := context.Background()
	for i := range 3 {
		opt := queue.EnqueueOptions{ID: fmt.Sprintf("u%d", i), Unique: time.Hour}
		if err := c.Enqueue(ctx, "mail", []byte(fmt.Sprintf(`{"class":"Mail","args":[%d]}`, i)), opt); err != nil {
			t.Fatal(err)
		}
	}
	srv.Do(t, "SET", queue.UniqueLockKey(ns, "mail", "0123456789abcdef0123456789abcdef"), "1") // resque-loner's own
	if err := queue.New(srv.Pool(t), "other").Enqueue(ctx, "mail", []byte(`{"class":"Mail","args":[9]}`), queue.EnqueueOptions{ID: "o", Unique: time.Hour}); err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	reg.Register(metrics.NewCollector(c))
	if body := scrape(t, metrics.Handler(reg)); !strings.Contains(body, "resqued_unique_locks 3\n") {
		t.Errorf("exposition lacks resqued_unique_locks 3:\n%s", body)
	}
}

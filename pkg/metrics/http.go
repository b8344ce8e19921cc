package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/resqued/resqued/pkg/queue"
)

// Handler serves reg's metrics in the Prometheus exposition format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg, // promhttp_metric_handler_errors_total
	})
}

// healthTimeout is how long Redis has to answer the health check's PING.
const healthTimeout = time.Second

// Healthz answers 200 "ok" when Redis answers q's PING within a second,
// and 503 with the error otherwise.
func Healthz(q *queue.Client) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		err := q.Ping(ctx)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("redis: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}
}

// Mux returns a ServeMux with GET /metrics and GET /healthz.
func Mux(reg *prometheus.Registry, q *queue.Client) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(reg))
	mux.Handle("GET /healthz", Healthz(q))
	return mux
}

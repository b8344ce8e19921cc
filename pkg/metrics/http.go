package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

// Healthz answers 200 "ok" when Redis answers PING within a second, and
// 503 with the error otherwise.
func Healthz(pool *redis.Pool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		err := ping(ctx, pool)
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

func ping(ctx context.Context, pool *redis.Pool) error {
	conn, err := pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = redis.DoContext(conn, ctx, "PING")
	return err
}

// Mux returns a ServeMux with GET /metrics and GET /healthz.
func Mux(reg *prometheus.Registry, pool *redis.Pool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(reg))
	mux.Handle("GET /healthz", Healthz(pool))
	return mux
}

package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/resqued/resqued/pkg/queue"
)

// healthTimeout bounds /healthz's Redis PING.
const healthTimeout = time.Second

// Healthz answers 200 "ok" when Redis answers a PING within a second,
// 503 with the error otherwise.
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

// Mux serves GET /metrics from reg and GET /healthz.
func Mux(reg *Registry, q *queue.Client) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(reg))
	mux.Handle("GET /healthz", Healthz(q))
	return mux
}

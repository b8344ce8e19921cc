package web

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/worker"
)

// mutate allows only a POST with the right CSRF token from this origin,
// then goes back to the Failed page (or the page its back field names).
func (s *server) mutate(fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return s.mutateTo("/failed", fn)
}

// mutateTo is mutate going back to page def by default.
func (s *server) mutateTo(def string, fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed: use the dashboard's buttons", http.StatusMethodNotAllowed)
			return
		}
		if !sameOrigin(r) {
			http.Error(w, "forbidden: cross-origin request", http.StatusForbidden)
			return
		}
		tok := r.PostFormValue("csrf")
		if subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
			http.Error(w, "forbidden: missing or wrong CSRF token; reload the page", http.StatusForbidden)
			return
		}
		if err := fn(w, r); err != nil {
			s.fail(w, err)
			return
		}
		http.Redirect(w, r, backTo(r.PostFormValue("back"), def), http.StatusSeeOther)
	}
}

// backTo is where a POST goes back to: back, when it is a path on this
// dashboard of a page with buttons (never another site: no scheme, no
// host, no "//" or backslash that a browser reads as one), else def.
func backTo(back, def string) string {
	if back == "" || strings.HasPrefix(back, "//") || strings.ContainsAny(back, "\\\r\n") {
		return def
	}
	u, err := url.Parse(back)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return def
	}
	if strings.HasPrefix(u.Path, "/failed") || u.Path == "/workers" || u.Path == "/status" || u.Path == "/queues" {
		return back
	}
	return def
}

func (s *server) fail(w http.ResponseWriter, err error) {
	s.log.Error("dashboard", "error", err)
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, queue.ErrNoFailure), errors.Is(err, worker.ErrNothingToCancel):
		code = http.StatusNotFound
	case errors.Is(err, errBadCancel), errors.Is(err, errBadQueue):
		code = http.StatusBadRequest
	}
	http.Error(w, err.Error(), code)
}

func formIndex(r *http.Request) (int, error) {
	i, err := strconv.Atoi(r.PostFormValue("index"))
	if err != nil || i < 0 {
		return 0, fmt.Errorf("index %q: %w", r.PostFormValue("index"), queue.ErrNoFailure)
	}
	return i, nil
}

func (s *server) retry(_ http.ResponseWriter, r *http.Request) error {
	i, err := formIndex(r)
	if err != nil {
		return err
	}
	_, err = s.cfg.Queue.RequeueFailed(r.Context(), i, time.Now())
	return err
}

func (s *server) remove(_ http.ResponseWriter, r *http.Request) error {
	i, err := formIndex(r)
	if err != nil {
		return err
	}
	return s.cfg.Queue.RemoveFailed(r.Context(), i)
}

func (s *server) retryAll(_ http.ResponseWriter, r *http.Request) error {
	_, err := s.cfg.Queue.RequeueAllFailed(r.Context(), time.Now())
	return err
}

func (s *server) clear(_ http.ResponseWriter, r *http.Request) error {
	_, err := s.cfg.Queue.ClearFailed(r.Context())
	return err
}

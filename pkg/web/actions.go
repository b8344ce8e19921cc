package web

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/resqued/resqued/pkg/queue"
)

// mutate allows only a POST with the right CSRF token from this origin.
func (s *server) mutate(fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
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
		back := "/failed"
		if q := r.PostFormValue("back"); strings.HasPrefix(q, "/failed") && !strings.HasPrefix(q, "//") {
			back = q
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

func (s *server) fail(w http.ResponseWriter, err error) {
	s.log.Error("dashboard", "error", err)
	code := http.StatusInternalServerError
	if errors.Is(err, queue.ErrNoFailure) {
		code = http.StatusNotFound
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

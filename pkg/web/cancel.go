package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/worker"
)

// errBadCancel is a cancel form that names no job or worker, or a
// malformed id: 400, not 500.
var errBadCancel = errors.New("bad cancel request")

// cancel is the Cancel button of the Workers page (form field worker)
// and of the Status page (field id): a running job is stopped by its
// worker, on whichever host, and recorded as failed with
// Resqued::Cancelled; a waiting one is removed from its queue or the
// delayed set. It does not wait for the worker: the page it goes back
// to shows the job leave within a second.
func (s *server) cancel(_ http.ResponseWriter, r *http.Request) error {
	id, wk := strings.TrimSpace(r.PostFormValue("id")), strings.TrimSpace(r.PostFormValue("worker"))
	c := &worker.Canceller{Queue: s.cfg.Queue, Status: s.cfg.Status, Wait: -1}
	by := canceller(r)
	var res *worker.Cancelled
	var err error
	switch {
	case (id == "") == (wk == ""):
		return fmt.Errorf("cancel: want a job id or a worker: %w", errBadCancel)
	case wk != "":
		res, err = c.CancelWorker(r.Context(), wk, by)
	default:
		if verr := queue.ValidateJobID(id); verr != nil {
			return fmt.Errorf("cancel: %v; %s: %w", verr, queue.JobIDWant, errBadCancel)
		}
		res, err = c.CancelJob(r.Context(), id, by)
	}
	if err != nil {
		return err
	}
	s.log.Info("dashboard cancel", "by", by, "outcome", res.String())
	return nil
}

// canceller is who asks, as the failure records it: the dashboard, the
// basic-auth user if any, and the request's remote address.
func canceller(r *http.Request) string {
	by := "dashboard"
	if user, _, ok := r.BasicAuth(); ok && user != "" {
		by = user + " via dashboard"
	}
	return by + " (" + r.RemoteAddr + ")"
}

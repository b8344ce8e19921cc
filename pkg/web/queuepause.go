package web

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/resqued/resqued/pkg/queue"
)

// The Queues page's Pause and Resume buttons: pausing a queue stops every
// worker taking its jobs (resque-pause's pause:queue:<q>, see
// queue.Client.PauseQueue); running jobs finish.

// errBadQueue is a pause or resume POST naming no valid queue.
var errBadQueue = errors.New("bad queue")

// pauseQueue pauses the queue the form names.
func (s *server) pauseQueue(_ http.ResponseWriter, r *http.Request) error {
	q, err := formQueue(r)
	if err != nil {
		return err
	}
	ch, err := s.cfg.Queue.PauseQueue(r.Context(), q)
	if err == nil && ch.Changed {
		s.log.Info("queue paused from the dashboard", "queue", q)
	}
	return err
}

// resumeQueue resumes the queue the form names.
func (s *server) resumeQueue(_ http.ResponseWriter, r *http.Request) error {
	q, err := formQueue(r)
	if err != nil {
		return err
	}
	ch, err := s.cfg.Queue.ResumeQueue(r.Context(), q)
	if err == nil && ch.Changed {
		s.log.Info("queue resumed from the dashboard", "queue", q)
	}
	return err
}

// formQueue is the queue a pause or resume form names.
func formQueue(r *http.Request) (string, error) {
	q := r.PostFormValue("queue")
	if err := queue.ValidateQueueName(q); err != nil {
		return "", fmt.Errorf("%w: %w", errBadQueue, err)
	}
	return q, nil
}

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

// setQueuePause is the Pause (pause true) or Resume button's action on
// the queue the form names.
func (s *server) setQueuePause(pause bool) func(http.ResponseWriter, *http.Request) error {
	set, done := s.cfg.Queue.ResumeQueue, "resumed"
	if pause {
		set, done = s.cfg.Queue.PauseQueue, "paused"
	}
	return func(_ http.ResponseWriter, r *http.Request) error {
		q, err := formQueue(r)
		if err != nil {
			return err
		}
		ch, err := set(r.Context(), q)
		if err == nil && ch.Changed {
			s.log.Info("queue "+done+" from the dashboard", "queue", q)
		}
		return err
	}
}

// formQueue is the queue a pause or resume form names.
func formQueue(r *http.Request) (string, error) {
	q := r.PostFormValue("queue")
	if err := queue.ValidateQueueName(q); err != nil {
		return "", fmt.Errorf("%w: %w", errBadQueue, err)
	}
	return q, nil
}

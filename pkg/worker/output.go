package worker

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
)

// keepOutput stores what the job's handler printed (--keep-output),
// after the handler ended and before its outcome is recorded, so that
// whoever sees the failure can see the output. outcome is "ok",
// "retried" or the failure's exception. A job that printed nothing
// stores nothing; a failure to store costs only the output.
func (w *Worker) keepOutput(log hclog.Logger, r *queue.Reserved, res *runner.Result, runErr error, outcome, errText string) {
	if w.cfg.KeepOutput <= 0 || (runErr == nil && w.cfg.KeepOutputFailuresOnly) {
		return
	}
	var stdout, stderr []string
	if res != nil {
		stdout, stderr = res.StdoutTail, res.StderrTail
	}
	var ee *runner.ExitError
	if len(stderr) == 0 && errors.As(runErr, &ee) {
		stderr = ee.StderrTail
	}
	if len(stdout) == 0 && len(stderr) == 0 {
		return
	}
	o := queue.Output{
		ID: queue.OutputID(r.Payload), Class: r.Class, Queue: r.Queue, Worker: r.Worker,
		At: time.Now(), Attempt: r.Attempt, Outcome: outcome, Error: errText,
		Stdout: stdout, Stderr: stderr,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := w.cfg.Queue.KeepOutput(ctx, o, queue.OutputOptions{TTL: w.cfg.KeepOutput, MaxJobs: w.cfg.KeepOutputMaxJobs})
	if err != nil {
		log.Warn("job output not kept", "output_id", o.ID, "error", err)
	}
}

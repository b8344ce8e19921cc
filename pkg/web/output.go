package web

import (
	"context"
	"errors"

	"github.com/resqued/resqued/pkg/queue"
)

// keptOutputs fills each failure row's kept output (--keep-output), in
// one round trip. A failure to read costs only the output: it is logged
// and the page is shown without it.
func (s *server) keptOutputs(ctx context.Context, rows []failedRow) {
	ids := make([]string, 0, len(rows))
	for i := range rows {
		if !rows[i].Invalid {
			rows[i].OutputID = queue.OutputID(rows[i].Payload)
			ids = append(ids, rows[i].OutputID)
		}
	}
	outs, err := s.cfg.Queue.Outputs(ctx, ids)
	if err != nil {
		s.log.Warn("read kept output", "error", err)
		return
	}
	for i := range rows {
		rows[i].Output = outs[rows[i].OutputID]
	}
}

// keptOutput is the kept output of job id for the status page, or nil.
func (s *server) keptOutput(ctx context.Context, id string) *queue.Output {
	if queue.ValidateOutputID(id) != nil {
		return nil
	}
	o, err := s.cfg.Queue.Output(ctx, id)
	if err != nil && !errors.Is(err, queue.ErrNoOutput) {
		s.log.Warn("read kept output", "job_id", id, "error", err)
	}
	return o
}

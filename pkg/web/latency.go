package web

import (
	"context"
	"strconv"
	"time"
)

// queueRow is one queue as the queue tables show it.
type queueRow struct {
	Queue string
	Size  int
	// Paused is set while the queue is paused (queue.Client.PauseQueue).
	Paused bool
	// Latency is the age of the queue's oldest job (its head), as
	// humanAge writes it; "—" when the queue is empty.
	Latency string
}

// queueRows reads every queue's size and head in one pipeline and times
// each head: from the enqueue time its payload carries, else from when
// this dashboard first saw it (queue.HeadClock).
func (s *server) queueRows(ctx context.Context) ([]queueRow, error) {
	hs, err := s.cfg.Queue.QueueHeads(ctx)
	if err != nil {
		return nil, err
	}
	lat := s.clock.Latencies(hs, time.Now())
	rows := make([]queueRow, len(hs))
	for i, h := range hs {
		rows[i] = queueRow{Queue: h.Queue, Size: h.Size, Paused: h.Paused, Latency: "—"}
		if h.Head != nil {
			rows[i].Latency = humanAge(lat[i])
		}
	}
	return rows, nil
}

// humanAge writes d in its two largest units, whole: "12s", "3m 12s",
// "2h 5m", "4d 3h".
func humanAge(d time.Duration) string {
	s := int64(d / time.Second)
	units := [...]struct {
		n    int64
		name string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}}
	for i, u := range units {
		if s < u.n && u.n > 1 { // the seconds unit writes 0s too
			continue
		}
		out := strconv.FormatInt(s/u.n, 10) + u.name
		if i+1 < len(units) {
			next := units[i+1]
			if r := s % u.n / next.n; r > 0 {
				out += " " + strconv.FormatInt(r, 10) + next.name
			}
		}
		return out
	}
	return "0s"
}

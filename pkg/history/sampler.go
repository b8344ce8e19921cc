package history

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/outage"
	"github.com/resqued/resqued/pkg/queue"
)

// DefaultSampleInterval is how often a Sampler tries to claim a minute's
// sample when SamplerConfig.Interval is zero.
const DefaultSampleInterval = time.Minute

// SamplerConfig is what a Sampler needs.
type SamplerConfig struct {
	Queue *queue.Client
	// Interval is how often Run looks at the queues. Zero means
	// DefaultSampleInterval.
	Interval time.Duration
	Now      func() time.Time // nil: time.Now
	Logger   hclog.Logger
}

// Sampler writes each queue's size and latency (its head's age) into
// the minute's history, for the Queues page's sparklines. Every daemon
// and resqued web run one, trying once a minute; the first of them to try
// in a minute claims it (queue.Client.ClaimHistorySample) and reads the
// queues, so a minute holds one sample whatever the size of the fleet,
// and each of the others spends one command a minute. Each tries at the
// same second of every minute (the second it started at), so the one
// whose second comes first in the minute wins every minute for as long
// as it runs, which keeps its queue.HeadClock current: a head whose payload carries no
// enqueue time (Ruby Resque's) is timed from when the sampling process
// first saw it, to within a minute.
type Sampler struct {
	cfg   SamplerConfig
	clock queue.HeadClock
}

// NewSampler returns a Sampler.
func NewSampler(cfg SamplerConfig) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultSampleInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Sampler{cfg: cfg}
}

// Sample claims this minute's sample and, when it is this process's,
// reads the queues and writes it. It reports whether it wrote.
func (s *Sampler) Sample(ctx context.Context) (bool, error) {
	now := s.cfg.Now()
	won, err := s.cfg.Queue.ClaimHistorySample(ctx, now)
	if err != nil || !won {
		return false, err
	}
	heads, err := s.cfg.Queue.QueueHeads(ctx)
	if err != nil {
		return false, err
	}
	lat := s.clock.Latencies(heads, now)
	samples := make([]queue.QueueSample, len(heads))
	for i, h := range heads {
		samples[i] = queue.QueueSample{Queue: h.Queue, Size: int64(h.Size), Latency: lat[i]}
	}
	return true, s.cfg.Queue.RecordQueueSamples(ctx, now, samples)
}

// Run samples at once and then every Interval until ctx ends. While Redis
// is away it logs one line when that starts and one when it ends.
func (s *Sampler) Run(ctx context.Context) {
	var down outage.Log
	log := s.cfg.Logger
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := s.Sample(sctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			down.Fail(log, err)
		} else {
			down.OK(log)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

package history

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/outage"
	"github.com/resqued/resqued/pkg/metrics"
	"github.com/resqued/resqued/pkg/queue"
)

// DefaultInterval is how often a Recorder flushes when Config.Interval
// is zero.
const DefaultInterval = 5 * time.Second

// MaxBacklog is how far back a Recorder keeps counts it could not flush:
// a longer outage loses history's counts from before its last hour.
const MaxBacklog = time.Hour

// Config is what a Recorder needs.
type Config struct {
	Queue *queue.Client
	// Worker is the id of the worker whose states the Recorder keeps
	// (SetState); empty: none.
	Worker string
	// Interval is how often Run flushes. Zero means DefaultInterval.
	Interval time.Duration
	// Now is the clock; nil means time.Now. A seeded run (tests, the
	// dashboard's screenshots) passes its own.
	Now    func() time.Time
	Logger hclog.Logger
}

// State is what a worker is doing, for its strip on the Workers page.
type State byte

// Worker states, as a strip's slots spell them.
const (
	Idle   State = 'i'
	Busy   State = 'b'
	Paused State = 'p'
)

// slotSeconds is the length of one slot of a worker's strip.
const slotSeconds = 10

// slotsPerMinute is how many strip slots a minute has.
const slotsPerMinute = 60 / slotSeconds

// Recorder counts a worker's jobs in memory and adds them to Redis every
// Interval, in one script call, so that a job costs a map update, not a
// Redis command. A
// process killed with -9 loses what it counted since its last flush;
// a flush that fails keeps its counts for the next one. A nil *Recorder
// records nothing.
type Recorder struct {
	cfg    Config
	bounds []float64
	log    hclog.Logger

	mu      sync.Mutex
	pending map[int64]map[queue.HistoryScope]*queue.HistoryCounts // by minute
	// The worker's state since when, and the time spent in each state
	// per strip slot (Unix seconds / slotSeconds) not yet final.
	state    State
	since    time.Time
	slots    map[int64]*[3]time.Duration
	stripped map[int64]bool // minutes whose strip changed since the last flush
	// changed is set when the state changed since the strip was last
	// written, at stripWritten (a Unix minute).
	changed      bool
	stripWritten int64
}

// NewRecorder returns a Recorder; its worker, if any, starts Idle.
func NewRecorder(cfg Config) *Recorder {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	r := &Recorder{cfg: cfg, bounds: metrics.DurationBuckets(), log: cfg.Logger,
		pending: map[int64]map[queue.HistoryScope]*queue.HistoryCounts{},
		slots:   map[int64]*[3]time.Duration{}, stripped: map[int64]bool{}}
	if cfg.Worker != "" {
		// Idle from now; the first strip is written at the first state
		// change or the next minute, as any other (Flush).
		r.state, r.since = Idle, cfg.Now()
		r.stripWritten = r.since.Unix() / 60
	}
	return r
}

// Job counts a job of class taken from q that ended now, after d,
// failed or not; class "" (an unreadable payload) counts in all jobs and
// the queue only.
func (r *Recorder) Job(q, class string, failed bool, d time.Duration) {
	if r == nil {
		return
	}
	r.JobAt(r.cfg.Now(), q, class, failed, d)
}

// JobAt counts a job that ended at t.
func (r *Recorder) JobAt(t time.Time, q, class string, failed bool, d time.Duration) {
	if r == nil {
		return
	}
	bucket := sort.SearchFloat64s(r.bounds, d.Seconds()) // first bound >= d; len: +Inf
	ms := d.Milliseconds()
	min := t.Unix() / 60
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.pending[min]
	if m == nil {
		m = map[queue.HistoryScope]*queue.HistoryCounts{}
		r.pending[min] = m
	}
	for _, s := range [...]queue.HistoryScope{{Kind: queue.ScopeAll}, {Kind: queue.ScopeQueue, Name: q}, {Kind: queue.ScopeClass, Name: class}} {
		if s.Kind == queue.ScopeClass && class == "" {
			continue // a payload that could not be read names none
		}
		h := m[s]
		if h == nil {
			h = &queue.HistoryCounts{}
			m[s] = h
		}
		h.Processed++
		if failed {
			h.Failed++
		}
		if s.Kind == queue.ScopeClass {
			// Durations are kept per class only: what the Classes
			// page's p50 and p95 are of.
			h.DurationMs += ms
			for len(h.Buckets) <= bucket {
				h.Buckets = append(h.Buckets, 0)
			}
			h.Buckets[bucket]++
		}
	}
}

// SetState records that the worker does s from now on.
func (r *Recorder) SetState(s State) {
	if r == nil || r.cfg.Worker == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.account(r.cfg.Now())
	if s != r.state {
		r.changed = true
	}
	r.state = s
}

// account adds the time from r.since to now to the slots it spans, in
// r.state. r.mu is held.
func (r *Recorder) account(now time.Time) {
	for t := r.since; t.Before(now); {
		slot := t.Unix() / slotSeconds
		end := time.Unix((slot+1)*slotSeconds, 0)
		if end.After(now) {
			end = now
		}
		d := r.slots[slot]
		if d == nil {
			d = &[3]time.Duration{}
			r.slots[slot] = d
		}
		d[stateIndex(r.state)] += end.Sub(t)
		r.stripped[slot/slotsPerMinute] = true
		t = end
	}
	if now.After(r.since) {
		r.since = now
	}
}

func stateIndex(s State) int {
	switch s {
	case Busy:
		return 1
	case Paused:
		return 2
	}
	return 0
}

var stateChars = [3]byte{byte(Idle), byte(Busy), byte(Paused)}

// strip spells minute min's slots: each the state it spent most time in,
// '-' for a slot with none. r.mu is held.
func (r *Recorder) strip(min int64) string {
	b := make([]byte, slotsPerMinute)
	for i := range b {
		b[i] = '-'
		d := r.slots[min*slotsPerMinute+int64(i)]
		if d == nil {
			continue
		}
		best := -1
		for k, v := range d {
			if v > 0 && (best < 0 || v > d[best]) {
				best = k
			}
		}
		if best >= 0 {
			b[i] = stateChars[best]
		}
	}
	return string(b)
}

// Run flushes every Interval until ctx ends, then once more.
func (r *Recorder) Run(ctx context.Context) {
	if r == nil {
		return
	}
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	var down outage.Log // one line when flushes start failing, one when they work again
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := r.Flush(fctx); err != nil {
				r.log.Warn("history not flushed at exit; the dashboard's charts miss this worker's last seconds", "error", err)
			}
			cancel()
			return
		case <-t.C:
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := r.Flush(fctx); err != nil {
			down.Fail(r.log, err) // the counts are kept for the next flush
		} else {
			down.OK(r.log)
		}
		cancel()
	}
}

// Flush adds what was counted since the last flush to Redis, with the
// worker's strip when its state changed or a new minute began. On error
// the counts are kept for the next flush (up to MaxBacklog). (A flush whose reply was lost
// after Redis applied it is counted twice: history is for charts; the
// exact totals are stat:processed and stat:failed.)
func (r *Recorder) Flush(ctx context.Context) error {
	if r == nil {
		return nil
	}
	now := r.cfg.Now()
	r.mu.Lock()
	pending := r.pending
	r.pending = map[int64]map[queue.HistoryScope]*queue.HistoryCounts{}
	var strips map[int64]string
	// The strip is written when the state changed, and else once a
	// minute: an idle worker, or one stuck on a long job, sends one
	// write a minute, not one a flush (Reader carries its last state
	// forward meanwhile).
	if r.cfg.Worker != "" && (r.changed || now.Unix()/60 != r.stripWritten) {
		r.account(now)
		strips = make(map[int64]string, len(r.stripped))
		for min := range r.stripped {
			strips[min] = r.strip(min)
		}
		r.stripped = map[int64]bool{}
		if len(strips) > 0 {
			r.changed, r.stripWritten = false, now.Unix()/60
		} else {
			strips = nil // nothing accounted yet: try again next flush
		}
	}
	r.mu.Unlock()

	batch := make([]queue.HistoryMinute, 0, len(pending)+len(strips))
	at := map[int64]int{}
	for min, counts := range pending {
		at[min] = len(batch)
		batch = append(batch, queue.HistoryMinute{Minute: min, Counts: counts})
	}
	for min, s := range strips {
		i, ok := at[min]
		if !ok {
			i = len(batch)
			batch = append(batch, queue.HistoryMinute{Minute: min})
		}
		batch[i].Workers = map[string]string{r.cfg.Worker: s}
	}
	err := r.cfg.Queue.FlushHistory(ctx, batch)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		// Slots of minutes before the last one are final, and written.
		for slot := range r.slots {
			if min := slot / slotsPerMinute; min < now.Unix()/60-1 && !r.stripped[min] {
				delete(r.slots, slot)
			}
		}
		return nil
	}
	oldest := now.Add(-queue.HistoryMinuteTTL).Unix() / 60
	for min, counts := range pending {
		if min < oldest {
			continue // expired before it could be written
		}
		m := r.pending[min]
		if m == nil {
			r.pending[min] = counts
			continue
		}
		for s, h := range counts {
			if o := m[s]; o != nil {
				o.Add(h)
			} else {
				m[s] = h
			}
		}
	}
	for min := range strips {
		r.stripped[min] = true
	}
	if strips != nil {
		r.changed = true // written again at the next flush
	}
	return err
}

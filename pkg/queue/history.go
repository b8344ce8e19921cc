package queue

// History: resqued's own per-minute and per-hour counts of jobs processed
// and failed, their durations, queue sizes and latencies, and what each
// worker was doing, for the dashboard's charts. Resque keeps none. The
// policy (what is counted, when it is flushed, how it is read into
// series) is pkg/history's; the keys, the field layout and the I/O are
// here.
//
// Every hash holds fields "<kind>:<scope>:<name>":
//
//	kind  p (processed, failed ones too, as stat:processed), f (failed),
//	      ms (duration sum, milliseconds), b0..bN (duration histogram
//	      bucket counts, resqued_job_duration_seconds's bounds, bN is +Inf),
//	      n (queue size sample), l (queue latency sample, seconds),
//	      s (the sample's claim marker)
//	scope a (all jobs: name empty), q (a queue), c (a class)
//
// The scope's name is the rest of the field, so a class or queue name
// may hold any byte, colons too.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// How long each resolution is kept. Minutes of all jobs and of queues
// serve the overview's last day, their hours its week. Classes are most
// of the memory in a busy fleet (docs/dashboard.md measures it), and are
// kept only as long as the Classes page looks: their minutes for its
// last hour (and a margin), their hours for its baseline, the 24 hours
// before that.
const (
	HistoryMinuteTTL      = 25 * time.Hour
	HistoryClassMinuteTTL = 2*time.Hour + 5*time.Minute
	HistoryHourTTL        = 8*24*time.Hour + time.Hour
	HistoryClassHourTTL   = 27 * time.Hour
	HistoryWorkerTTL      = time.Hour
)

// HistoryScope is what a count is of: all jobs ('a', Name empty), one
// queue ('q') or one class ('c').
type HistoryScope struct {
	Kind byte
	Name string
}

// Scopes of history counts.
const (
	ScopeAll   = 'a'
	ScopeQueue = 'q'
	ScopeClass = 'c'
)

// HistoryCounts are the counts of one scope in one minute or hour.
type HistoryCounts struct {
	Processed, Failed int64
	DurationMs        int64
	// Buckets counts durations per bucket (not cumulative), the bounds
	// of resqued_job_duration_seconds then +Inf; nil when none.
	Buckets []int64
}

// Add adds o to h.
func (h *HistoryCounts) Add(o *HistoryCounts) {
	h.Processed += o.Processed
	h.Failed += o.Failed
	h.DurationMs += o.DurationMs
	for i, n := range o.Buckets {
		for len(h.Buckets) <= i {
			h.Buckets = append(h.Buckets, 0)
		}
		h.Buckets[i] += n
	}
}

// HistoryMinute is what one flush adds for one minute.
type HistoryMinute struct {
	Minute int64 // Unix time of the minute's start, in minutes
	Counts map[HistoryScope]*HistoryCounts
	// Workers holds, per worker id, what it did in each 10-second slot
	// of the minute: six characters of b (busy), i (idle), p (paused)
	// or - (not running). A worker writes only its own field.
	Workers map[string]string
}

// HistorySlot is one minute or hour read back.
type HistorySlot struct {
	At     time.Time
	Counts map[HistoryScope]*HistoryCounts
	// Size and Latency are the queues' samples (minutes only): the
	// queue's length and its head's age, in seconds.
	Size    map[string]int64
	Latency map[string]float64
	Workers map[string]string
}

// Resolution of history: a minute or an hour.
type Resolution int

// Resolutions of history. MinuteClasses and HourClasses are the
// classes' counts, kept apart from the rest (and shorter).
const (
	Minute Resolution = iota
	MinuteClasses
	Hour
	HourClasses
	WorkerMinute
)

func (c *Client) historyKey(r Resolution, t time.Time) string {
	switch r {
	case MinuteClasses:
		return HistoryClassMinuteKey(c.ns, t.Unix()/60)
	case Hour:
		return HistoryHourKey(c.ns, t.Unix()/3600)
	case HourClasses:
		return HistoryClassHourKey(c.ns, t.Unix()/3600)
	case WorkerMinute:
		return HistoryWorkerKey(c.ns, t.Unix()/60)
	}
	return HistoryMinuteKey(c.ns, t.Unix()/60)
}

func historyField(kind string, s HistoryScope) string {
	return kind + ":" + string(s.Kind) + ":" + s.Name
}

// flushHistoryScript applies a flush in one call: KEYS are the hashes
// it touches; ARGV is a list of operations, each "i" key field n
// (HINCRBY), "s" key field value (HSET) or "e" key seconds (EXPIRE),
// with key an index into KEYS. One script, not a MULTI of its commands,
// so that an idle worker's strip once a minute is one command sent.
var flushHistoryScript = redis.NewScript(-1, `
local i = 1
while i <= #ARGV do
  local op, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if op == 'i' then
    redis.call('HINCRBY', key, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 's' then
    redis.call('HSET', key, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  else
    redis.call('EXPIRE', key, ARGV[i + 2])
    i = i + 3
  end
end
return 1
`)

// FlushHistory adds the minutes to history in one script: each count
// goes into its minute and its hour (MinuteClasses and HourClasses for
// classes), the way Sidekiq's metrics write every resolution at once
// (lib/sidekiq/metrics/tracking.rb), so no roll-up has to run; worker
// slots are set in their WorkerMinute. Counts are added (HINCRBY), so
// any number of workers flush into the same keys; each key touched gets
// its expiry again.
func (c *Client) FlushHistory(ctx context.Context, minutes []HistoryMinute) error {
	var keys []string
	index := map[string]int{}
	ttl := map[string]time.Duration{}
	var ops []interface{}
	key := func(k string, d time.Duration) string {
		if _, ok := index[k]; !ok {
			keys = append(keys, k)
			index[k] = len(keys)
			ttl[k] = d
		}
		return strconv.Itoa(index[k])
	}
	for _, m := range minutes {
		at := time.Unix(m.Minute*60, 0)
		// The minute's and hour's keys, for all jobs and queues ([0]) and
		// for classes ([1]): built once per minute, not per scope.
		var pairs [2][2]string
		pairOf := func(class bool) (string, string) {
			i := 0
			if class {
				i = 1
			}
			if pairs[i][0] == "" {
				if class {
					pairs[i] = [2]string{key(c.historyKey(MinuteClasses, at), HistoryClassMinuteTTL), key(c.historyKey(HourClasses, at), HistoryClassHourTTL)}
				} else {
					pairs[i] = [2]string{key(c.historyKey(Minute, at), HistoryMinuteTTL), key(c.historyKey(Hour, at), HistoryHourTTL)}
				}
			}
			return pairs[i][0], pairs[i][1]
		}
		for s, h := range m.Counts {
			mk, hk := pairOf(s.Kind == ScopeClass)
			incr := func(kind string, v int64) {
				if v != 0 {
					f := historyField(kind, s)
					ops = append(ops, "i", mk, f, v, "i", hk, f, v)
				}
			}
			incr("p", h.Processed)
			incr("f", h.Failed)
			incr("ms", h.DurationMs)
			for i, b := range h.Buckets {
				incr("b"+strconv.Itoa(i), b)
			}
		}
		for id, slots := range m.Workers {
			ops = append(ops, "s", key(c.historyKey(WorkerMinute, at), HistoryWorkerTTL), id, slots)
		}
	}
	if len(ops) == 0 {
		return nil
	}
	for _, k := range keys {
		ops = append(ops, "e", strconv.Itoa(index[k]), int64(ttl[k]/time.Second))
	}
	args := make([]interface{}, 0, 1+len(keys)+len(ops))
	args = append(args, len(keys))
	for _, k := range keys {
		args = append(args, k)
	}
	args = append(args, ops...)
	if _, err := c.script(ctx, flushHistoryScript, args...); err != nil {
		return fmt.Errorf("flush history: %w", err)
	}
	return nil
}

// QueueSample is one queue's size and head age at a sampling.
type QueueSample struct {
	Queue   string
	Size    int64
	Latency time.Duration
}

// claimSampleScript claims a minute's sample: HSETNX of its marker, and
// the minute's expiry when it took it, so that a claim whose sample
// never comes (the reading failed) leaves nothing that lives forever.
var claimSampleScript = redis.NewScript(1, `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
`)

// ClaimHistorySample claims the queue sample of the minute holding t for
// this process, so one process in the fleet samples each minute, and the
// others pay one command for looking. False: another one has.
func (c *Client) ClaimHistorySample(ctx context.Context, t time.Time) (bool, error) {
	won, err := redis.Int(c.script(ctx, claimSampleScript, c.historyKey(Minute, t), historyField("s", HistoryScope{Kind: ScopeAll}),
		t.Unix(), int64(HistoryMinuteTTL/time.Second)))
	if err != nil {
		return false, fmt.Errorf("claim history sample: %w", err)
	}
	return won == 1, nil
}

// RecordQueueSamples writes the queues' samples into the minute holding
// t, once ClaimHistorySample gave it to this process, and sets the
// minute's expiry.
func (c *Client) RecordQueueSamples(ctx context.Context, t time.Time, samples []QueueSample) error {
	key := c.historyKey(Minute, t)
	args := redis.Args{key}
	for _, s := range samples {
		q := HistoryScope{Kind: ScopeQueue, Name: s.Queue}
		args = append(args, historyField("n", q), s.Size,
			historyField("l", q), strconv.FormatFloat(s.Latency.Seconds(), 'f', 3, 64))
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("record queue samples: %w", err)
	}
	defer conn.Close()
	_ = conn.Send("MULTI")
	if len(samples) > 0 {
		_ = conn.Send("HSET", args...)
	}
	_ = conn.Send("EXPIRE", key, int64(HistoryMinuteTTL/time.Second))
	if _, err := conn.Do("EXEC"); err != nil {
		return fmt.Errorf("record queue samples: %w", err)
	}
	return nil
}

// ReadHistory reads the slots of resolution r from from to to (both
// included, each truncated to its minute or hour), oldest first, one
// HGETALL each in one pipeline. A slot with nothing recorded is there,
// empty.
func (c *Client) ReadHistory(ctx context.Context, r Resolution, from, to time.Time) ([]HistorySlot, error) {
	return c.readSlots(ctx, r, from, to, func(conn redis.Conn, key string) error {
		return conn.Send("HGETALL", key)
	}, func(conn redis.Conn, s *HistorySlot) error {
		m, err := redis.StringMap(conn.Receive())
		if err == nil {
			parseHistory(s, m, r == WorkerMinute)
		}
		return err
	})
}

// ReadHistoryScope reads, like ReadHistory, the slots of resolution r
// from from to to, but only scope's processed and failed counts: one
// HMGET of two fields each, which is what the throughput chart draws,
// whatever else the slots hold (every queue's counts and samples).
func (c *Client) ReadHistoryScope(ctx context.Context, r Resolution, from, to time.Time, scope HistoryScope) ([]HistorySlot, error) {
	pf, ff := historyField("p", scope), historyField("f", scope)
	return c.readSlots(ctx, r, from, to, func(conn redis.Conn, key string) error {
		return conn.Send("HMGET", key, pf, ff)
	}, func(conn redis.Conn, s *HistorySlot) error {
		vs, err := redis.Values(conn.Receive())
		if err != nil {
			return err
		}
		p, _ := redis.Int64(vs[0], nil)
		f, _ := redis.Int64(vs[1], nil)
		if p != 0 || f != 0 {
			s.Counts = map[HistoryScope]*HistoryCounts{scope: {Processed: p, Failed: f}}
		}
		return nil
	})
}

// readSlots lays out the slots of r from from to to, sends one command
// per slot's key in one pipeline, and reads each reply into its slot.
func (c *Client) readSlots(ctx context.Context, r Resolution, from, to time.Time,
	send func(conn redis.Conn, key string) error, recv func(conn redis.Conn, s *HistorySlot) error) ([]HistorySlot, error) {
	step := time.Minute
	if r == Hour || r == HourClasses {
		step = time.Hour
	}
	from, to = from.Truncate(step), to.Truncate(step)
	if to.Before(from) {
		return nil, nil
	}
	n := int(to.Sub(from)/step) + 1
	if n > 20000 {
		return nil, fmt.Errorf("read history: %s to %s is too long a range", from, to)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer conn.Close()
	slots := make([]HistorySlot, n)
	for i := range slots {
		slots[i].At = from.Add(time.Duration(i) * step)
		_ = send(conn, c.historyKey(r, slots[i].At))
	}
	if err := conn.Flush(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	for i := range slots {
		if err := recv(conn, &slots[i]); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
	}
	return slots, nil
}

// parseHistory fills s from a hash's fields; fields it does not know (a
// later version's) are skipped.
func parseHistory(s *HistorySlot, m map[string]string, workers bool) {
	if workers {
		s.Workers = m
		return
	}
	for f, v := range m {
		kind, rest, ok := strings.Cut(f, ":")
		if !ok || kind == "" || len(rest) < 2 || rest[1] != ':' {
			continue
		}
		scope := HistoryScope{Kind: rest[0], Name: rest[2:]}
		switch kind {
		case "n":
			if s.Size == nil {
				s.Size = map[string]int64{}
			}
			s.Size[scope.Name], _ = strconv.ParseInt(v, 10, 64)
			continue
		case "l":
			if s.Latency == nil {
				s.Latency = map[string]float64{}
			}
			s.Latency[scope.Name], _ = strconv.ParseFloat(v, 64)
			continue
		case "s":
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		if s.Counts == nil {
			s.Counts = map[HistoryScope]*HistoryCounts{}
		}
		h := s.Counts[scope]
		if h == nil {
			h = &HistoryCounts{}
			s.Counts[scope] = h
		}
		switch {
		case kind == "p":
			h.Processed = n
		case kind == "f":
			h.Failed = n
		case kind == "ms":
			h.DurationMs = n
		case kind[0] == 'b':
			i, err := strconv.Atoi(kind[1:])
			if err != nil || i < 0 || i > 64 {
				continue
			}
			for len(h.Buckets) <= i {
				h.Buckets = append(h.Buckets, 0)
			}
			h.Buckets[i] = n
		}
	}
}

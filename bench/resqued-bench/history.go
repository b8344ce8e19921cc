package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/queue"
)

// historyMemory measures what the dashboard's history costs in Redis
// per 1,000 classes (issue 17): an hour of minutes in which each of
// 1,000 classes on 10 queues ran a job every minute (one in ten failing,
// durations spread over four buckets), flushed as the workers would,
// then the memory of one minute's and one hour's keys (MEMORY USAGE) and
// what the retention keeps at once: 125 class minutes (2 h 5 min) and
// 27 class hours, 1,500 minutes and 193 hours of all jobs and queues.
func (b *bench) historyMemory() error {
	if err := b.srv.flush(); err != nil {
		return err
	}
	const ns, classes, queues = "resque", 1000, 10
	q := queue.New(b.srv.pool, ns)
	base := time.Now().Truncate(time.Hour)
	clock := base
	rec := history.NewRecorder(history.Config{Queue: q, Now: func() time.Time { return clock }})
	durations := []time.Duration{3 * time.Millisecond, 40 * time.Millisecond, 200 * time.Millisecond, 2 * time.Second}
	used0, err := b.usedMemory()
	if err != nil {
		return err
	}
	for m := 0; m < 60; m++ {
		clock = base.Add(time.Duration(m) * time.Minute)
		for c := 0; c < classes; c++ {
			rec.JobAt(clock, "queue"+strconv.Itoa(c%queues), "Class"+strconv.Itoa(c), c%10 == 0, durations[(c+m)%len(durations)])
		}
		if err := rec.Flush(context.Background()); err != nil {
			return err
		}
	}
	used1, err := b.usedMemory()
	if err != nil {
		return err
	}
	usage := func(key string) (float64, error) {
		n, err := redis.Int64(b.srv.do("MEMORY", "USAGE", key, "SAMPLES", "0"))
		return float64(n) / 1024, err
	}
	min := base.Unix() / 60
	cm, err := usage(queue.HistoryClassMinuteKey(ns, min))
	if err != nil {
		return err
	}
	mm, err := usage(queue.HistoryMinuteKey(ns, min))
	if err != nil {
		return err
	}
	hk, err := usage(queue.HistoryHourKey(ns, base.Unix()/3600))
	if err != nil {
		return err
	}
	ch, err := usage(queue.HistoryClassHourKey(ns, base.Unix()/3600))
	if err != nil {
		return err
	}
	fields, err := redis.Int64(b.srv.do("HLEN", queue.HistoryClassMinuteKey(ns, min)))
	if err != nil {
		return err
	}
	held := (125*cm + 27*ch + 1500*mm + 193*hk) / 1024
	progress("history memory: class minute %.0f KiB (%d fields), class hour %.0f KiB, minute %.1f KiB, hour %.1f KiB; an hour of it %.1f MiB; the retention at once %.0f MiB",
		cm, fields, ch, mm, hk, float64(used1-used0)/(1<<20), held)
	b.rep.section("History's memory in Redis, 1,000 classes on 10 queues, each running every minute (MEMORY USAGE)")
	b.rep.add(row{name: fmt.Sprintf("one minute of the classes (KiB, %d fields)", fields), vals: []float64{cm}, prec: 0})
	b.rep.add(row{name: "one minute of all jobs and the queues (KiB)", vals: []float64{mm}, prec: 1})
	b.rep.add(row{name: "one hour of the classes (KiB)", vals: []float64{ch}, prec: 0})
	b.rep.add(row{name: "one hour of all jobs and the queues (KiB)", vals: []float64{hk}, prec: 1})
	b.rep.add(row{name: "an hour of history written, used_memory growth (MiB)", vals: []float64{float64(used1-used0) / (1 << 20)}, prec: 1})
	b.rep.add(row{name: "held at once: 125 class minutes, 27 class hours, 1,500 minutes, 193 hours (MiB)", vals: []float64{held}, prec: 1})
	return b.srv.flush()
}

func (b *bench) usedMemory() (int64, error) {
	info, err := b.srv.info("memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(info["used_memory"], 10, 64)
}

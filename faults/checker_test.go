package faults

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The checker compares, job by job, what each job should have come to
// with what Redis recorded and what the handler's own log says ran. It is
// a pure function of its inputs, so TestChecker can feed it fabricated
// states and prove that a regression turns the suite red.

// kind is what a job is built to do.
type kind string

const (
	kOK        kind = "ok"        // exits 0 (or "done":"ok")
	kFail      kind = "fail"      // exits with Code (or "done":"failed")
	kTimeout   kind = "timeout"   // hangs until --timeout
	kMalformed kind = "malformed" // args not an array: Resqued::InvalidPayload
	kOversize  kind = "oversize"  // over --max-payload: Resqued::InvalidPayload
	kRetryOK   kind = "retry-ok"  // exits 75 Retries times, then 0
	kRetryFail kind = "retry-fail"
	kPoison    kind = "poison" // SIGKILLs its own worker
	kSpawn     kind = "spawn"  // starts a child, then hangs until --timeout
)

// jobSpec is one job the suite enqueues and what it must come to.
type jobSpec struct {
	N          int
	Kind       kind
	Code       int // exit status of kFail / kRetryFail
	Retries    int // k: failed attempts before the last one
	Tracked    bool
	Persistent bool // class PWork (persistent handler) instead of Work
	Delayed    bool // enqueued through the delayed set
	Queue      string
}

func (j jobSpec) ID() string { return fmt.Sprintf("job-%05d", j.N) }

func (j jobSpec) String() string {
	s := string(j.Kind)
	if j.Kind == kFail || j.Kind == kRetryFail {
		s += " exit " + strconv.Itoa(j.Code)
	}
	if j.Retries > 0 {
		s += fmt.Sprintf(" after %d retries", j.Retries)
	}
	if j.Persistent {
		s += ", persistent"
	} else {
		s += ", exec"
	}
	if j.Tracked {
		s += ", tracked"
	}
	if j.Delayed {
		s += ", delayed"
	}
	return j.ID() + " (" + s + ")"
}

// failure is one record of the failed list, as far as the checker cares.
type failure struct {
	Exception, Error string
	Payload          string
}

// statusObs is a tracked job's php-resque status as read at the end.
type statusObs struct {
	Present bool
	Code    int // 1 waiting, 2 running, 3 failed, 4 complete
	TTL     int // seconds; -1 none
}

// run is one line of the handler's log: "start n attempt pid ppid jobid"
// or "end n attempt result".
type run struct {
	Start   bool
	N       int
	Attempt int
	PID     int
	PPID    int // the worker that ran it
	JobID   string
	Result  string // on end lines: ok, fail, retry
	Class   string // Work, PWork, Tick
	// Failover marks a "failover k" line (N is k): the suite killed the
	// master there for the k-th time, or (k 0) a sentinel announced the
	// master down or switched. Epoch, set by check, counts the markers
	// before a start; Round is the last k before it.
	Failover     bool
	Epoch, Round int
}

// faultRec is one fault the suite injected.
type faultRec struct {
	Kind   string
	Killed []int // pids SIGKILLed (worker or supervisor processes)
}

// observed is everything the checker reads.
type observed struct {
	Failures    []failure
	Statuses    map[string]statusObs // by job id
	Processed   int                  // stat:processed
	FailedStat  int                  // stat:failed
	Runs        []run
	Queued      map[string]bool // job ids still in a queue
	InFlight    map[string]bool // job ids held in some worker:<id>
	Delayed     int             // items left in the delayed set
	TickLocks   []string        // values of the recurring entry's tick locks (host:pid:run)
	TicksQueued int             // tick jobs pushed but still queued at the end
	Faults      []faultRec
	// NotAcked are the jobs whose enqueue returned an error: the client
	// was told it may not have happened (a master killed mid-command).
	NotAcked map[string]bool
	// Killers are the pids of workers a poison job killed (from the log).
}

// allow lists the documented outcomes a scenario's faults make possible.
type allow struct {
	// Stop: a job stopped by TERM/INT/USR1 (or a supervisor's death)
	// fails with "(worker shutting down)" or "(killed by operator ...)".
	Stop bool
	// OrphanFail: --on-orphan fail; a killed worker's job fails as
	// Resque::DirtyExit / PruneDeadWorkerDirtyExit.
	OrphanFail bool
	// MaxRedeliveries bounds the runs of a poison job (0: 3).
	MaxRedeliveries int
	// Ticks: a recurring entry ran; check its ticks.
	Ticks bool
	// Failover: the master was killed -9 and a replica promoted. A job
	// run again after a failover marker (its earlier run started before
	// it) is explained: its reserve or outcome write was made on the
	// killed master only, the write's WAIT never answered, and the new
	// master still had the job queued or in worker:<id>. It is still
	// recorded once.
	Failover bool
	// FailoverLoss: without --min-replicas, writes a failover loses are
	// the measurement, not errors: jobs with no trace on the new master
	// count as Lost, successful runs missing from stat:processed as
	// OutcomesLost.
	FailoverLoss bool
}

// report is the checker's verdict on one scenario.
type report struct {
	Jobs, Right, Wrong, Lost, Unfinished, Duplicated, NotFinal int
	Stopped                                                    int            // documented: stopped by a signal
	Twice                                                      map[string]int // explained second runs, by reason
	Ticks, TicksLost                                           int
	// NotEnqueued: jobs whose enqueue the client saw fail and that left
	// no trace (the client was told: not lost).
	NotEnqueued int
	// OutcomesLost: with FailoverLoss, successful runs that
	// stat:processed on the new master does not count.
	OutcomesLost int
	Notes        []string // what FailoverLoss counted instead of reporting
	// TwiceAfter counts the second runs a failover explains by the kill
	// they followed; LostJobs are the lost jobs' numbers.
	TwiceAfter map[int]int
	LostJobs   []int
	Errors     []string
}

func (r *report) errorf(format string, args ...interface{}) {
	r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
}

var jobIDRe = regexp.MustCompile(`job-(\d{5})`)

func jobN(payload string) (int, bool) {
	m := jobIDRe.FindStringSubmatch(payload)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.Atoi(m[1])
	return n, true
}

// wantFailure is the failure record a failing job must leave: its
// exception and a fragment of its error.
func wantFailure(j jobSpec) (exception, errFragment string) {
	switch j.Kind {
	case kFail:
		if j.Persistent {
			return "Fault::Failed", fmt.Sprintf("job %d exits %d", j.N, j.Code)
		}
		return "Resqued::HandlerFailed", fmt.Sprintf("exited with status %d", j.Code)
	case kRetryFail:
		return "Resqued::HandlerFailed", fmt.Sprintf("exited with status %d (attempt %d)", j.Code, j.Retries+1)
	case kTimeout, kSpawn:
		return "Resqued::Timeout", "timed out"
	case kMalformed, kOversize:
		return "Resqued::InvalidPayload", ""
	case kPoison:
		return "Resque::DirtyExit", ""
	}
	return "", ""
}

func succeeds(k kind) bool { return k == kOK || k == kRetryOK }

func stoppedBySignal(f failure) bool {
	return strings.Contains(f.Error, "(worker shutting down)") || strings.Contains(f.Error, "(killed by operator")
}

func orphanFailed(f failure) bool {
	return (f.Exception == "Resque::DirtyExit" && strings.Contains(f.Error, "Job still being processed")) ||
		f.Exception == "Resque::PruneDeadWorkerDirtyExit"
}

// check compares every job of specs with obs.
func check(specs []jobSpec, obs observed, al allow) report {
	r := report{Twice: map[string]int{}, TwiceAfter: map[int]int{}}
	killed := map[int]string{}
	for _, f := range obs.Faults {
		for _, pid := range f.Killed {
			killed[pid] = f.Kind
		}
	}
	byN := map[int][]failure{}
	var tickFailures []failure
	for _, f := range obs.Failures {
		if strings.Contains(f.Payload, `"class":"Tick"`) {
			tickFailures = append(tickFailures, f)
			continue
		}
		if n, ok := jobN(f.Payload); ok {
			byN[n] = append(byN[n], f)
		} else {
			r.errorf("failure record for no job of the suite: %s %q (payload %.80s)", f.Exception, f.Error, f.Payload)
		}
	}
	type na struct{ n, a int }
	starts := map[na][]run{}
	maxAttempt := map[int]int{}
	endedOK := map[int]bool{}
	poisonKillers := map[int]bool{}
	var tickRuns []run
	epoch, round := 0, 0
	for _, ru := range obs.Runs {
		if ru.Failover {
			epoch++
			if ru.N > 0 {
				round = ru.N
			}
			continue
		}
		ru.Epoch, ru.Round = epoch, round
		if ru.Class == "Tick" {
			if ru.Start {
				tickRuns = append(tickRuns, ru)
			}
			continue
		}
		if ru.Start {
			starts[na{ru.N, ru.Attempt}] = append(starts[na{ru.N, ru.Attempt}], ru)
			maxAttempt[ru.N] = max(maxAttempt[ru.N], ru.Attempt)
		} else if ru.Result == "ok" {
			endedOK[ru.N] = true
		}
	}
	spec := map[int]jobSpec{}
	for _, j := range specs {
		spec[j.N] = j
		if j.Kind == kPoison {
			for a := 1; a <= maxAttempt[j.N]; a++ {
				for _, ru := range starts[na{j.N, a}] {
					poisonKillers[ru.PPID] = true
				}
			}
		}
	}
	wantProcessed := 0
	maxRedeliveries := al.MaxRedeliveries
	if maxRedeliveries == 0 {
		maxRedeliveries = 3
	}

	for _, j := range specs {
		r.Jobs++
		id := j.ID()
		recs := byN[j.N]
		right := true
		wrong := func(format string, args ...interface{}) {
			if right {
				r.Wrong++
			}
			right = false
			r.errorf("wrong outcome: %s: "+format, append([]interface{}{j}, args...)...)
		}

		// No job runs more attempts than its retry policy allows (a
		// retry loop, or an attempt count lost on the way).
		if a, allowed := max(maxAttempt[j.N], recordedAttemptOf(recs)), 1+j.Retries; a > allowed {
			wrong("attempt %d ran (run log %d, failure record %d), but its policy allows %d", a, maxAttempt[j.N], recordedAttemptOf(recs), allowed)
		}

		// Runs, from the handler's side: every attempt runs once, and
		// every further run has a documented reason.
		for a := 1; a <= maxAttempt[j.N]; a++ {
			rs := starts[na{j.N, a}]
			for i := 1; i < len(rs); i++ {
				prev := rs[i-1]
				switch {
				case j.Kind == kPoison:
					r.Twice["the job killed its own worker"]++
				case killed[prev.PPID] != "":
					r.Twice["its worker was killed -9 mid-run ("+killed[prev.PPID]+")"]++
				case poisonKillers[prev.PPID]:
					r.Twice["its worker was killed by a poison job"]++
				case al.Failover && rs[i].Epoch > prev.Epoch:
					r.Twice["a failover lost its reserve or outcome write"]++
					r.TwiceAfter[rs[i].Round]++
				default:
					r.Duplicated++
					r.errorf("duplicated: %s attempt %d ran %d times; run %d (handler pid %d, worker pid %d) has no documented reason to run again",
						j, a, len(rs), i+1, rs[i].PID, rs[i].PPID)
				}
			}
		}
		if j.Kind == kPoison {
			if n := len(starts[na{j.N, 1}]); n > maxRedeliveries+1 {
				r.errorf("poison: %s killed its worker and was delivered %d times; want at most %d (--max-redeliveries %d, then Resque::DirtyExit)",
					j, n, maxRedeliveries+1, maxRedeliveries)
			}
		}

		// The outcome Redis recorded.
		finished := true
		switch {
		case len(recs) > 1:
			var ex []string
			for _, f := range recs {
				ex = append(ex, f.Exception+": "+f.Error)
			}
			wrong("%d failure records, want at most 1: %s", len(recs), strings.Join(ex, "; "))
		case len(recs) == 1 && al.Stop && stoppedBySignal(recs[0]):
			r.Stopped++
		case len(recs) == 1 && al.OrphanFail && orphanFailed(recs[0]):
			r.Stopped++
		case len(recs) == 1 && succeeds(j.Kind):
			wrong("want success, got failure %s: %s", recs[0].Exception, recs[0].Error)
		case len(recs) == 1:
			ex, frag := wantFailure(j)
			if recs[0].Exception != ex || !strings.Contains(recs[0].Error, frag) {
				wrong("want failure %s %q, got %s %q", ex, frag, recs[0].Exception, recs[0].Error)
			}
		case succeeds(j.Kind) && endedOK[j.N] && !obs.Queued[id] && !obs.InFlight[id]:
			// Succeeded: the handler ended well, and no failure record.
		case obs.Queued[id] || obs.InFlight[id] || (j.Delayed && maxAttempt[j.N] == 0 && obs.Delayed > 0):
			finished = false
			r.Unfinished++
			where := "still queued"
			if obs.InFlight[id] {
				where = "still held in a worker:<id>"
			}
			r.errorf("unfinished: %s %s when the run ended", j, where)
		case obs.NotAcked[id] && maxAttempt[j.N] == 0 && !obs.Statuses[id].Present:
			// Its enqueue failed, and the client was told.
			finished = false
			r.NotEnqueued++
		case al.FailoverLoss:
			finished = false
			r.Lost++
			r.LostJobs = append(r.LostJobs, j.N)
			right = false
			r.Notes = append(r.Notes, fmt.Sprintf("lost in a failover: %s (%d runs)%s", j, maxAttempt[j.N], statusNote(obs.Statuses[id], j.Tracked)))
		case succeeds(j.Kind):
			finished = false
			r.Lost++
			r.LostJobs = append(r.LostJobs, j.N)
			right = false
			r.errorf("lost: %s: no failure record, its handler never ended well (%d runs), not queued, not held by any worker%s",
				j, maxAttempt[j.N], statusNote(obs.Statuses[id], j.Tracked))
		default:
			finished = false
			r.Lost++
			r.LostJobs = append(r.LostJobs, j.N)
			right = false
			ex, _ := wantFailure(j)
			r.errorf("lost: %s: want failure %s, got no failure record, not queued, not held by any worker (%d runs)%s",
				j, ex, maxAttempt[j.N], statusNote(obs.Statuses[id], j.Tracked))
		}
		if finished {
			wantProcessed++
			a := maxAttempt[j.N]
			if len(recs) == 1 {
				// A final attempt killed before its handler logged
				// anything still counts: the record names it.
				a = max(a, recordedAttempt(recs[0]))
			}
			if a > 1 {
				wantProcessed += a - 1 // each retried attempt counts as processed
			}
		}

		// The tracked status: final, the right one, with its TTL.
		if j.Tracked && finished {
			st := obs.Statuses[id]
			wantCode := 3
			if succeeds(j.Kind) && len(recs) == 0 {
				wantCode = 4
			}
			notFinal := func(format string, args ...interface{}) {
				r.NotFinal++
				right = false
				r.errorf("status not final: %s: "+format, append([]interface{}{j}, args...)...)
			}
			switch {
			case !st.Present && al.FailoverLoss:
				// Its outcome was on the killed master only.
				right = false
				r.Notes = append(r.Notes, fmt.Sprintf("status lost in a failover: %s", j))
			case !st.Present:
				notFinal("no status key (expired or never written)")
			case st.Code != 3 && st.Code != 4:
				notFinal("status %s (ttl %d), want %s with a TTL", codeName(st.Code), st.TTL, codeName(wantCode))
			case st.Code != wantCode:
				wrong("status %s, want %s", codeName(st.Code), codeName(wantCode))
			case st.TTL <= 0:
				notFinal("status %s has no TTL (ttl %d)", codeName(st.Code), st.TTL)
			}
		}
		if right && finished {
			r.Right++
		}
	}

	// Recurring ticks: each tick lock a daemon won pushed one job, run
	// once; a tick whose winner was killed -9 may be lost (documented).
	if al.Ticks {
		ids := map[string][]run{}
		for _, ru := range tickRuns {
			ids[ru.JobID] = append(ids[ru.JobID], ru)
		}
		r.Ticks = len(obs.TickLocks)
		for _, rs := range ids {
			wantProcessed++
			for i := 1; i < len(rs); i++ {
				if killed[rs[i-1].PPID] != "" {
					r.Twice["tick: its worker was killed -9 mid-run"]++
				} else {
					r.Duplicated++
					r.errorf("duplicated: tick job %s ran %d times", rs[0].JobID, len(rs))
				}
			}
		}
		lostOK := 0
		for _, holder := range obs.TickLocks {
			parts := strings.Split(holder, ":")
			if len(parts) >= 2 {
				if pid, err := strconv.Atoi(parts[1]); err == nil && killed[pid] != "" {
					lostOK++
				}
			}
		}
		for _, f := range tickFailures {
			if !(al.Stop && stoppedBySignal(f)) {
				r.errorf("wrong outcome: tick job failed: %s: %s", f.Exception, f.Error)
			}
		}
		switch d := len(obs.TickLocks) - len(ids) - obs.TicksQueued; {
		case d > lostOK:
			r.TicksLost = d
			r.errorf("ticks: %d tick locks taken, %d tick jobs ran, %d still queued: %d ticks lost, only %d explained by a killed lock holder", len(obs.TickLocks), len(ids), obs.TicksQueued, d, lostOK)
		case d > 0:
			r.TicksLost = d // documented: the lock holder died before its push
		case d < 0:
			r.errorf("ticks: %d tick jobs ran for %d tick locks: a tick pushed twice", len(ids), len(obs.TickLocks))
		}
	}

	// Counters: one processed per recorded outcome (and per retried
	// attempt), one failed per failure record.
	if al.FailoverLoss && obs.Processed < wantProcessed {
		r.OutcomesLost = wantProcessed - obs.Processed
		r.Notes = append(r.Notes, fmt.Sprintf("stat:processed is %d, %d short of the outcomes the run log shows: written on the killed master only", obs.Processed, r.OutcomesLost))
	} else if obs.Processed != wantProcessed {
		r.errorf("stat:processed is %d, want %d (one per recorded outcome, retried attempts included)", obs.Processed, wantProcessed)
	}
	if obs.FailedStat != len(obs.Failures) {
		r.errorf("stat:failed is %d, want %d (one per failure record)", obs.FailedStat, len(obs.Failures))
	}
	sort.Strings(r.Errors)
	return r
}

func statusNote(st statusObs, tracked bool) string {
	if !tracked {
		return ""
	}
	if !st.Present {
		return "; no status"
	}
	return fmt.Sprintf("; status %s (ttl %d)", codeName(st.Code), st.TTL)
}

func codeName(c int) string {
	switch c {
	case 1:
		return "waiting"
	case 2:
		return "running"
	case 3:
		return "failed"
	case 4:
		return "complete"
	}
	return "unknown(" + strconv.Itoa(c) + ")"
}

// twice renders the explained second runs for the table.
func (r report) twice() string {
	if len(r.Twice) == 0 {
		return "0"
	}
	var keys []string
	total := 0
	for k, n := range r.Twice {
		keys = append(keys, fmt.Sprintf("%d %s", n, k))
		total += n
	}
	sort.Strings(keys)
	return fmt.Sprintf("%d: %s", total, strings.Join(keys, "; "))
}

// recordedAttemptOf is the attempt the only failure record of recs
// names, or 0.
func recordedAttemptOf(recs []failure) int {
	if len(recs) != 1 {
		return 0
	}
	return recordedAttempt(recs[0])
}

// recordedAttempt is the attempt a failure record names ("... (attempt
// 3)"), or 0.
func recordedAttempt(f failure) int {
	i := strings.LastIndex(f.Error, "(attempt ")
	if i < 0 {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSuffix(f.Error[i+len("(attempt "):], ")"))
	return n
}

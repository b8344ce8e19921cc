package faults

import (
	"fmt"
	"strings"
	"testing"
)

// cleanState fabricates what a correct daemon leaves for specs: one run
// per attempt, the right failure records, final statuses with their TTL
// and matching counters.
func cleanState(specs []jobSpec) observed {
	obs := observed{Statuses: map[string]statusObs{}, Queued: map[string]bool{}, InFlight: map[string]bool{}}
	for _, j := range specs {
		attempts := 1 + j.Retries
		for a := 1; a <= attempts; a++ {
			obs.Runs = append(obs.Runs, run{Start: true, N: j.N, Attempt: a, PID: 1000 + j.N, PPID: 50, Class: "Work"})
		}
		obs.Processed += attempts
		code := 4
		if succeeds(j.Kind) {
			obs.Runs = append(obs.Runs, run{N: j.N, Attempt: attempts, Result: "ok"})
		} else {
			ex, frag := wantFailure(j)
			obs.Failures = append(obs.Failures, failure{Exception: ex, Error: "handler " + frag, Payload: fmt.Sprintf(`{"id":"%s"}`, j.ID())})
			obs.FailedStat++
			code = 3
		}
		if j.Tracked {
			obs.Statuses[j.ID()] = statusObs{Present: true, Code: code, TTL: 86400}
		}
	}
	return obs
}

func selfTestSpecs() []jobSpec {
	var specs []jobSpec
	for n := 0; n < 60; n++ {
		specs = append(specs, mixed(n))
	}
	return specs
}

func hasError(r report, fragment string) bool {
	for _, e := range r.Errors {
		if strings.Contains(e, fragment) {
			return true
		}
	}
	return false
}

func TestChecker(t *testing.T) {
	specs := selfTestSpecs()

	t.Run("Clean", func(t *testing.T) {
		r := check(specs, cleanState(specs), allow{})
		if len(r.Errors) != 0 || r.Right != len(specs) {
			t.Fatalf("a correct state: %d right of %d, errors:\n%s", r.Right, len(specs), strings.Join(r.Errors, "\n"))
		}
	})

	// A retried job whose last attempt was stopped by a signal before its
	// handler logged anything: the failure record names the attempt, and
	// the retried attempt before it still counts as processed.
	t.Run("StoppedBeforeLogging", func(t *testing.T) {
		one := []jobSpec{{N: 1, Kind: kRetryOK, Retries: 1, Queue: "high"}}
		obs := observed{Statuses: map[string]statusObs{}, Queued: map[string]bool{}, InFlight: map[string]bool{},
			Runs:       []run{{Start: true, N: 1, Attempt: 1, PID: 1001, PPID: 50, Class: "Work"}},
			Failures:   []failure{{Exception: "Resque::DirtyExit", Error: "handler Work killed by signal SIGTERM (worker shutting down) (attempt 2)", Payload: `{"id":"job-00001"}`}},
			FailedStat: 1, Processed: 2}
		if r := check(one, obs, allow{Stop: true}); len(r.Errors) != 0 {
			t.Fatalf("errors:\n%s", strings.Join(r.Errors, "\n"))
		}
		obs.Processed = 3
		if r := check(one, obs, allow{Stop: true}); !hasError(r, "stat:processed") {
			t.Fatal("a processed count one too high was not reported")
		}
	})

	t.Run("EveryJobFailed", func(t *testing.T) {
		obs := cleanState(specs)
		obs.Failures, obs.FailedStat = nil, 0
		for _, j := range specs {
			obs.Failures = append(obs.Failures, failure{Exception: "Resqued::HandlerFailed", Error: "handler Work exited with status 1", Payload: fmt.Sprintf(`{"id":"%s"}`, j.ID())})
			obs.FailedStat++
			if j.Tracked {
				obs.Statuses[j.ID()] = statusObs{Present: true, Code: 3, TTL: 86400}
			}
		}
		r := check(specs, obs, allow{})
		if r.Wrong == 0 || !hasError(r, "wrong outcome") {
			t.Fatalf("every job failed: wrong %d, errors %d", r.Wrong, len(r.Errors))
		}
	})

	t.Run("EveryJobRanTwice", func(t *testing.T) {
		obs := cleanState(specs)
		var again []run
		for _, ru := range obs.Runs {
			if ru.Start {
				again = append(again, ru)
			}
		}
		obs.Runs = append(obs.Runs, again...)
		r := check(specs, obs, allow{})
		if r.Duplicated != len(again) || !hasError(r, "duplicated") {
			t.Fatalf("every run twice: duplicated %d, want %d", r.Duplicated, len(again))
		}
		// A kill -9 of the worker that ran them explains them all.
		obs.Faults = []faultRec{{Kind: "kill -9 all", Killed: []int{50}}}
		if r := check(specs, obs, allow{}); r.Duplicated != 0 || len(r.Errors) != 0 {
			t.Fatalf("second runs after a kill -9 of their worker: %v", r.Errors)
		}
	})

	// A run repeated across a failover marker is explained (the master
	// died with the job's reserve or outcome write); one repeated with
	// no failover between its runs is not.
	t.Run("RanTwiceAcrossFailover", func(t *testing.T) {
		obs := cleanState(specs)
		var again []run
		for _, ru := range obs.Runs {
			if ru.Start {
				again = append(again, ru)
			}
		}
		runs := append(append(append([]run{}, obs.Runs...), run{Failover: true, N: 2}), again...)
		obs.Runs = runs
		if r := check(specs, obs, allow{}); r.Duplicated != len(again) {
			t.Fatalf("without allow.Failover: duplicated %d, want %d", r.Duplicated, len(again))
		}
		r := check(specs, obs, allow{Failover: true})
		if r.Duplicated != 0 || len(r.Errors) != 0 || r.Twice["a failover lost its reserve or outcome write"] != len(again) || r.TwiceAfter[2] != len(again) {
			t.Fatalf("second runs after a failover: twice %v, errors %v", r.Twice, r.Errors)
		}
		// The marker before both runs explains nothing.
		obs.Runs = append([]run{{Failover: true}}, append(append([]run{}, cleanState(specs).Runs...), again...)...)
		if r := check(specs, obs, allow{Failover: true}); r.Duplicated != len(again) {
			t.Fatalf("a failover before both runs: duplicated %d, want %d", r.Duplicated, len(again))
		}
		if got, ok := parseRun("failover 3"); !ok || !got.Failover || got.N != 3 {
			t.Errorf(`parseRun("failover 3") = %+v, %v; want a failover marker`, got, ok)
		}
	})

	// Without --min-replicas a failover's losses are counted, not
	// errors; an enqueue the client saw fail is not a loss at all.
	t.Run("FailoverLoss", func(t *testing.T) {
		obs := cleanState(specs)
		obs.Runs = nil
		obs.Failures, obs.FailedStat, obs.Processed = nil, 0, 0
		obs.Statuses = map[string]statusObs{}
		if r := check(specs, obs, allow{Failover: true}); r.Lost != len(specs) || len(r.Errors) == 0 {
			t.Fatalf("with --min-replicas, nothing ran: lost %d of %d, %d errors", r.Lost, len(specs), len(r.Errors))
		}
		r := check(specs, obs, allow{Failover: true, FailoverLoss: true})
		if r.Lost != len(specs) || len(r.Errors) != 0 {
			t.Fatalf("without --min-replicas, nothing ran: lost %d of %d, errors %v", r.Lost, len(specs), r.Errors)
		}
		obs.NotAcked = map[string]bool{}
		for _, j := range specs {
			obs.NotAcked[j.ID()] = true
		}
		if r := check(specs, obs, allow{Failover: true}); r.NotEnqueued != len(specs) || r.Lost != 0 || len(r.Errors) != 0 {
			t.Fatalf("every enqueue failed: not enqueued %d, lost %d, errors %v", r.NotEnqueued, r.Lost, r.Errors)
		}
		// Outcomes the run log shows but the new master lacks.
		obs = cleanState(specs)
		obs.Processed -= 3
		if r := check(specs, obs, allow{Failover: true, FailoverLoss: true}); r.OutcomesLost != 3 || len(r.Errors) != 0 {
			t.Fatalf("3 outcomes lost: counted %d, errors %v", r.OutcomesLost, r.Errors)
		}
		obs.Processed += 4
		if r := check(specs, obs, allow{Failover: true, FailoverLoss: true}); !hasError(r, "stat:processed") {
			t.Fatal("an outcome counted twice was not reported without --min-replicas")
		}
	})

	t.Run("Lost", func(t *testing.T) {
		obs := cleanState(specs)
		obs.Runs = nil // nothing ever ran; no records either
		obs.Failures, obs.FailedStat, obs.Processed = nil, 0, 0
		r := check(specs, obs, allow{})
		if r.Lost != len(specs) {
			t.Fatalf("nothing ran: lost %d, want %d", r.Lost, len(specs))
		}
	})

	t.Run("StatusNotFinal", func(t *testing.T) {
		obs := cleanState(specs)
		for id := range obs.Statuses {
			obs.Statuses[id] = statusObs{Present: true, Code: 2, TTL: -1}
		}
		r := check(specs, obs, allow{})
		if r.NotFinal == 0 || !hasError(r, "status not final") {
			t.Fatalf("every status running: not final %d", r.NotFinal)
		}
		for id := range obs.Statuses {
			obs.Statuses[id] = statusObs{Present: true, Code: 4, TTL: -1}
		}
		if r := check(specs, obs, allow{}); !hasError(r, "has no TTL") {
			t.Fatalf("final statuses without a TTL not reported: %v", r.Errors)
		}
	})

	t.Run("Counters", func(t *testing.T) {
		obs := cleanState(specs)
		obs.Processed++
		obs.FailedStat--
		r := check(specs, obs, allow{})
		if !hasError(r, "stat:processed") || !hasError(r, "stat:failed") {
			t.Fatalf("counters off by one not reported: %v", r.Errors)
		}
	})

	t.Run("RunLogParse", func(t *testing.T) {
		for line, want := range map[string]run{
			"start 12 2 100 50 job-00012 Work": {Start: true, N: 12, Attempt: 2, PID: 100, PPID: 50, JobID: "job-00012", Class: "Work"},
			"start 3 1 100 50 - PWork":         {Start: true, N: 3, Attempt: 1, PID: 100, PPID: 50, JobID: "-", Class: "PWork"},
			"end 12 2 ok":                      {N: 12, Attempt: 2, Result: "ok", Class: "Work"},
		} {
			if got, ok := parseRun(line); !ok || got != want {
				t.Errorf("parseRun(%q) = %+v, %v; want %+v", line, got, ok, want)
			}
		}
		// A handler that got no args ran no job; read with an empty n,
		// its pid was taken for an attempt number.
		for _, line := range []string{"start ? 1 578 587 job-00012 Work", "start ? 1 578 587 Work"} {
			if got, ok := parseRun(line); ok {
				t.Errorf("parseRun(%q) = %+v, want no run", line, got)
			}
		}
	})
}

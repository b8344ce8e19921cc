package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// logLine is "<time> [LEVEL] <logger>: <message>..." as hclog writes it.
var logLine = regexp.MustCompile(`\[(TRACE|DEBUG|INFO|WARN|ERROR)\]\s+([\w.-]+): (.*)$`)

// loopLines returns the lines logged by logger (exactly that name, not its
// children) in out, with their level.
func loopLines(out, logger string) (levels, msgs []string) {
	for _, l := range strings.Split(out, "\n") {
		if m := logLine.FindStringSubmatch(l); m != nil && m[2] == logger {
			levels, msgs = append(levels, m[1]), append(msgs, m[3])
		}
	}
	return levels, msgs
}

// TestOutage_OneLinePerLoop: while Redis is away, every loop of the daemon
// that talks to it (the delayed-job scheduler, the recurring schedule, the
// worker's job loop) tries again and again, but logs one line when the
// outage starts and one when it ends, not one per attempt.
func TestOutage_OneLinePerLoop(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	dir, marks := t.TempDir(), t.TempDir()
	handler(t, dir, "Tick", `echo run >> "`+marks+`/ticks"`)
	sched := filepath.Join(t.TempDir(), "schedule.yml")
	if err := os.WriteFile(sched, []byte("tick: {every: 1s, class: Tick, queue: ticks}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, srv, dir, "--queues", "ticks", "--interval", "1", "--schedule", sched)
	waitProcessed(t, srv, 1) // every loop is running and has reached Redis

	loops := []string{"resqued.scheduler", "resqued.schedule", "resqued.worker"}
	since := len(d.out.String())
	during := func() string { return d.out.String()[since:] }
	srv.Stop()
	// Each loop has demonstrably tried several times: at least three of
	// its lines carry a Redis error, whatever their level.
	for _, l := range loops {
		redistest.Eventually(t, outWithin, func() bool {
			_, msgs := loopLines(during(), l)
			n := 0
			for _, m := range msgs {
				if strings.Contains(m, "error=") {
					n++
				}
			}
			return n >= 3
		}, "%s never tried Redis three times during the outage", l)
	}
	// One line per loop for the outage's start, however many attempts.
	loud := func(out, logger string) []string {
		levels, msgs := loopLines(out, logger)
		var got []string
		for i, lv := range levels {
			if lv == "WARN" || lv == "ERROR" {
				got = append(got, lv+" "+msgs[i])
			}
		}
		return got
	}
	for _, l := range loops {
		if got := loud(during(), l); len(got) != 1 || !strings.Contains(got[0], "redis unavailable") {
			t.Errorf("%s logged %d warning or error lines during the outage, want one \"redis unavailable\":\n%s", l, len(got), strings.Join(got, "\n"))
		}
	}

	srv.Restart()
	recovered := func(l string) int {
		levels, msgs := loopLines(during(), l)
		n := 0
		for i, m := range msgs {
			if levels[i] == "INFO" && strings.HasPrefix(m, "redis reachable again") {
				n++
			}
		}
		return n
	}
	for _, l := range loops {
		redistest.Eventually(t, outWithin, func() bool { return recovered(l) >= 1 }, "%s never logged that Redis is back", l)
	}
	// Work resumes: the schedule's next tick is enqueued and run.
	before := getInt(t, srv, queue.StatKey(ns, "processed"))
	waitProcessed(t, srv, before+1)
	out := during()
	for _, l := range loops {
		if n := recovered(l); n != 1 {
			t.Errorf("%s logged \"redis reachable again\" %d times, want once", l, n)
		}
		if got := loud(out, l); len(got) != 1 {
			t.Errorf("%s logged %d warning or error lines for the outage and after, want one:\n%s", l, len(got), strings.Join(got, "\n"))
		}
	}
	if !outRunning(d) {
		t.Fatalf("daemon exited: %v", d.err)
	}
}

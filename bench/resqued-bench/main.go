// Command resqued-bench is resqued's benchmark suite (make bench): it
// measures the cost of spawning a handler (the exec ceiling), resqued's
// throughput against that ceiling, persistent handlers against an
// in-process Go drain of the same jobs (inprocess.go: the shape of Ruby
// Resque's non-forking mode), pickup latency, enqueue throughput, memory
// and the cost of an idle daemon, against a private redis-server
// it starts on a free loopback port. It prints a markdown table and the
// machine it ran on; docs/performance.md explains every row.
//
// It never fails because the machine is slow. With -check it exits 1
// when a median misses its target.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	runs               int
	jobs               int
	counts             []int
	pickupJobs         int
	pickupSettle       time.Duration
	enqueueInvocations int
	bulkJobs           int
	memJobs            int
	idleWindow         time.Duration
	only               map[string]bool
	check              bool
	resqued            string
	noop               string
	stamp              string
	redisServer        string
	quiet              bool
}

var sections = []string{"throughput", "persistent", "history", "history-memory", "pickup", "enqueue", "memory", "idle"}

func main() {
	var cfg config
	var counts, only string
	flag.IntVar(&cfg.runs, "runs", 3, "`R` runs of every measurement; each figure is their median, with min and max")
	flag.IntVar(&cfg.jobs, "jobs", 2000, "`N` jobs (and ceiling execs) per throughput run")
	flag.StringVar(&counts, "counts", "1,2,4", "parallelism of the ceiling and COUNT of resqued in throughput and persistent runs, and workers of the in-process drain")
	flag.IntVar(&cfg.pickupJobs, "pickup-jobs", 1000, "jobs pushed one at a time per pickup-latency run")
	flag.DurationVar(&cfg.pickupSettle, "pickup-settle", time.Millisecond, "pause after resqued is seen waiting before each pickup push")
	flag.IntVar(&cfg.enqueueInvocations, "enqueue-invocations", 200, "resqued enqueue processes per run (one job each)")
	flag.IntVar(&cfg.bulkJobs, "bulk-jobs", 100000, "jobs per resqued enqueue --stdin run")
	flag.IntVar(&cfg.memJobs, "mem-jobs", 10000, "jobs drained per memory run")
	flag.DurationVar(&cfg.idleWindow, "idle-window", 10*time.Second, "how long the idle daemons (COUNT 1, 2 and 4, watched at once) are watched; their rates are per second over it, heartbeats (one a minute) as they fall")
	flag.StringVar(&only, "only", strings.Join(sections, ","), "measurements to run, comma-separated: "+strings.Join(sections, ", "))
	flag.BoolVar(&cfg.check, "check", false, "exit 1 when a median misses its target (for local use; never in CI)")
	flag.StringVar(&cfg.resqued, "resqued", "", "resqued binary (default: go build ./cmd/resqued into a temporary directory)")
	flag.StringVar(&cfg.noop, "noop", "", "compiled no-op handler (default: go build ./bench/noop)")
	flag.StringVar(&cfg.stamp, "stamp", "", "compiled stamp handler (default: go build ./bench/stamp)")
	flag.StringVar(&cfg.redisServer, "redis-server", "redis-server", "redis-server binary")
	flag.BoolVar(&jobIDs, "ids", true, "give pre-enqueued jobs an id as resqued enqueue and php-resque do (-ids=false: Ruby Resque's payloads, one status round trip less per job)")
	flag.BoolVar(&cfg.quiet, "q", false, "no progress lines on stderr")
	flag.Parse()
	quiet = cfg.quiet
	for _, f := range strings.Split(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatalf("-counts %q: want positive integers", counts)
		}
		cfg.counts = append(cfg.counts, n)
	}
	cfg.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		s = strings.TrimSpace(s)
		if !contains(sections, s) {
			fatalf("-only %q: unknown measurement %q (want %s)", only, s, strings.Join(sections, ", "))
		}
		cfg.only[s] = true
	}
	if cfg.runs < 1 || cfg.jobs < 1 || cfg.pickupJobs < 1 || cfg.enqueueInvocations < 1 || cfg.bulkJobs < 1 || cfg.memJobs < 1 {
		fatalf("-runs and the job counts must be at least 1")
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	tmp, err := os.MkdirTemp("", "resqued-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	cleanup := func() { killTracked(); os.RemoveAll(tmp) }
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "resqued-bench: interrupted")
		cleanup()
		os.Exit(130)
	}()
	code := run(cfg, tmp)
	cleanup()
	os.Exit(code)
}

// startLoad is /proc/loadavg when the bench began: other work on the
// machine skews every figure.
var startLoad string

func run(cfg config, tmp string) int {
	began := time.Now()
	startLoad = readFile("/proc/loadavg")
	b := &bench{cfg: cfg, tmp: tmp, rep: &report{}, handlers: filepath.Join(tmp, "handlers"), fifo: filepath.Join(tmp, "stamp.fifo")}
	if err := b.prepare(); err != nil {
		fmt.Fprintln(os.Stderr, "resqued-bench:", err)
		return 1
	}
	srv, err := startRedis(cfg.redisServer, tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "resqued-bench:", err)
		return 1
	}
	defer srv.stop()
	b.srv = srv
	progress("redis-server on %s, resqued %s, handlers in %s", srv.addr, b.resqued, b.handlers)

	steps := []struct {
		name string
		f    func() error
	}{
		{"throughput", b.throughput},
		{"pickup", b.pickup},
		{"enqueue", b.enqueue},
		{"persistent", b.persistent},
		{"history", b.history},
		{"history-memory", b.historyMemory},
		{"memory", b.memory},
		{"idle", b.idle},
	}
	for _, s := range steps {
		if !cfg.only[s.name] {
			continue
		}
		t := time.Now()
		if err := s.f(); err != nil {
			fmt.Fprintf(os.Stderr, "resqued-bench: %s: %v\n", s.name, err)
			return 1
		}
		progress("%s done in %s", s.name, time.Since(t).Round(time.Second))
	}

	fmt.Printf("## resqued benchmark\n\n")
	fmt.Print(machineInfo(b, cfg, time.Since(began)))
	fmt.Println()
	missed := b.rep.print(os.Stdout)
	if len(missed) > 0 {
		fmt.Printf("\nTargets missed (medians): %s\n", strings.Join(missed, "; "))
	} else {
		fmt.Printf("\nEvery target with a median met.\n")
	}
	if cfg.check && len(missed) > 0 {
		return 1
	}
	return 0
}

// prepare builds what was not given and lays out the handlers directory.
func (b *bench) prepare() error {
	bin := filepath.Join(b.tmp, "bin")
	if err := os.MkdirAll(b.handlers, 0o755); err != nil {
		return err
	}
	// buildTags are the Makefile's TAGS, so that a suite that builds
	// resqued itself measures the binary make builds.
	const buildTags = "urfave_cli_no_docs"
	build := func(given *string, pkg, name string) error {
		if *given != "" {
			abs, err := filepath.Abs(*given)
			*given = abs
			return err
		}
		out := filepath.Join(bin, name)
		progress("go build -o %s %s", out, pkg)
		cmd := exec.Command("go", "build", "-tags", buildTags, "-o", out, pkg)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
		}
		*given = out
		return nil
	}
	if err := build(&b.cfg.resqued, "./cmd/resqued", "resqued"); err != nil {
		return err
	}
	if err := build(&b.cfg.noop, "./bench/noop", "noop"); err != nil {
		return err
	}
	if err := build(&b.cfg.stamp, "./bench/stamp", "stamp"); err != nil {
		return err
	}
	b.resqued = b.cfg.resqued
	// Copies, not symlinks: resqued refuses handlers that resolve
	// outside their directory.
	for _, c := range []struct{ from, to string }{{b.cfg.noop, "Noop"}, {b.cfg.stamp, "Stamp"}} {
		data, err := os.ReadFile(c.from)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(b.handlers, c.to), data, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(b.handlers, "Sh.sh"), []byte("#!/bin/sh\ncat >/dev/null\n"), 0o755); err != nil {
		return err
	}
	// Persistent no-ops: compiled, and Python (the case they exist for).
	for _, c := range []struct{ pkg, name, to string }{{"./bench/pnoop", "pnoop", "PNoop.persistent"}, {"./bench/pstamp", "pstamp", "PStamp.persistent"}} {
		path := ""
		if err := build(&path, c.pkg, c.name); err != nil {
			return err
		}
		if data, err := os.ReadFile(path); err != nil {
			return err
		} else if err := os.WriteFile(filepath.Join(b.handlers, c.to), data, 0o755); err != nil {
			return err
		}
	}
	py := "#!/usr/bin/env python3\nimport os, sys\nout = os.fdopen(int(os.environ['RESQUE_RESULT_FD']), 'w', buffering=1)\n" +
		"while sys.stdin.readline():\n    out.write('{\"done\":\"ok\"}\\n')\n"
	if err := os.WriteFile(filepath.Join(b.handlers, "PyNoop.persistent.py"), []byte(py), 0o755); err != nil {
		return err
	}
	return b.readStamps()
}

func machineInfo(b *bench, cfg config, took time.Duration) string {
	var sb strings.Builder
	line := func(k, v string) { fmt.Fprintf(&sb, "- %s: %s\n", k, v) }
	line("Date", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	line("nproc", strconv.Itoa(runtime.NumCPU()))
	line("CPU", cpuModel())
	line("Kernel", strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")))
	line("Go", runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
	line("Redis", firstLine(output(cfg.redisServer, "--version")))
	line("resqued", firstLine(output(b.resqued, "--version")))
	ids := "with an id (as resqued enqueue writes them)"
	if !jobIDs {
		ids = "without an id (as Ruby Resque writes them)"
	}
	line("Settings", fmt.Sprintf("R=%d runs; throughput N=%d jobs, COUNT/parallelism %s; pickup %d jobs; enqueue %d invocations and %d bulk jobs; memory %d jobs; idle window %s; payloads %s",
		cfg.runs, cfg.jobs, intsString(cfg.counts), cfg.pickupJobs, cfg.enqueueInvocations, cfg.bulkJobs, cfg.memJobs, cfg.idleWindow, ids))
	line("Load average (1, 5, 15 min) at start / end", loadAvg(startLoad)+" / "+loadAvg(readFile("/proc/loadavg")))
	line("Run time", took.Round(time.Second).String())
	return sb.String()
}

func loadAvg(s string) string {
	f := strings.Fields(s)
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	for _, l := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func output(name string, args ...string) string {
	b, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return string(b)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func intsString(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var quiet bool

func progress(format string, args ...interface{}) {
	if !quiet {
		fmt.Fprintf(os.Stderr, "resqued-bench: "+format+"\n", args...)
	}
}

func fatalf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "resqued-bench: "+format+"\n", args...)
	os.Exit(2)
}

// report collects rows grouped in sections.
type report struct {
	rows []row
}

// row is one figure: the median, min and max of its runs.
type row struct {
	section string // set on section header rows only
	name    string
	vals    []float64
	prec    int
	target  string
	check   func(median float64) bool
	note    string
}

func (r *report) section(title string) { r.rows = append(r.rows, row{section: title}) }
func (r *report) add(x row)            { r.rows = append(r.rows, x) }

func median(v []float64) float64 {
	s := append([]float64{}, v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// print writes the table and returns the rows whose median missed its
// target.
func (r *report) print(w *os.File) []string {
	var missed []string
	fmt.Fprintln(w, "| Measure | Median | Min | Max | Target | |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|")
	section := ""
	for _, x := range r.rows {
		if x.section != "" {
			section = x.section
			fmt.Fprintf(w, "| **%s** | | | | | |\n", x.section)
			continue
		}
		if len(x.vals) == 0 {
			continue
		}
		m := median(x.vals)
		lo, hi := x.vals[0], x.vals[0]
		for _, v := range x.vals {
			lo, hi = min(lo, v), max(hi, v)
		}
		verdict := ""
		if x.check != nil {
			if x.check(m) {
				verdict = "met"
			} else {
				verdict = "**missed**"
				missed = append(missed, fmt.Sprintf("%s / %s: %s (target %s)", section, x.name, num(m, x.prec), x.target))
			}
		}
		name := x.name
		if x.note != "" {
			name += " — " + x.note
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", name, num(m, x.prec), num(lo, x.prec), num(hi, x.prec), x.target, verdict)
	}
	return missed
}

// num formats v with prec decimals and thousands separators.
func num(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Trim(s, "-0.") == "" {
		s = strings.TrimPrefix(s, "-") // no "-0.0"
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	if len(intPart) > 3 {
		var b strings.Builder
		for i, c := range intPart {
			if i > 0 && (len(intPart)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		intPart = b.String()
	}
	if frac != "" {
		intPart += "." + frac
	}
	if neg {
		intPart = "-" + intPart
	}
	return intPart
}

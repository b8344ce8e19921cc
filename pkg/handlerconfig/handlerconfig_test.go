package handlerconfig_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/resqued/resqued/pkg/handlerconfig"
	"github.com/resqued/resqued/pkg/runner"
)

const example = `classes:
  Resize:
    memory: 512M
    cpu: 30s
    timeout: 60s
    max_output: 100M
    procs: 16
    env:
      MAGICK_THREAD_LIMIT: "1"
      TMPDIR: /scratch
  Mailers::Welcome:
    memory: 0
  Quiet:
`

func TestParse(t *testing.T) {
	c, err := handlerconfig.Parse("handlers.yml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	defaults := runner.Limits{Memory: 1 << 30, CPU: time.Minute, Output: 1 << 20, Procs: 4}
	jobs := c.Jobs(defaults)
	want := map[string]handlerconfig.Job{
		"Resize": {
			Limits:  &runner.Limits{Memory: 512 << 20, CPU: 30 * time.Second, Output: 100 << 20, Procs: 16},
			Timeout: time.Minute,
			Env:     []string{"MAGICK_THREAD_LIMIT=1", "TMPDIR=/scratch"},
		},
		// Field by field: only memory is overridden, to none.
		"Mailers::Welcome": {Limits: &runner.Limits{CPU: time.Minute, Output: 1 << 20, Procs: 4}},
		"Quiet":            {Limits: &defaults},
	}
	if diff := cmp.Diff(want, jobs); diff != "" {
		t.Errorf("Jobs (-want +got):\n%s", diff)
	}
	if got := c.Classes["Mailers::Welcome"].Line; got != 11 {
		t.Errorf("line of Mailers::Welcome = %d, want 11", got)
	}
	if c, err := handlerconfig.Parse("empty.yml", nil); err != nil || len(c.Classes) != 0 {
		t.Errorf("empty file: %v, %v", c, err)
	}
}

func TestParse_errors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"classes:\n  Resize:\n    cpu: 1s\n    memory: 5X\n",
			`handlers config handlers.yml line 4: class Resize: memory "5X": want a size such as 512M or 2G`},
		{"classes:\n  Resize:\n    memroy: 5M\n",
			`handlers config handlers.yml line 3: class Resize: unknown field "memroy" (want memory, cpu, timeout, max_output, procs, env, concurrency, concurrency_key, rate, rate_key, unique)`},
		{"classes:\n  Resize:\n    memory: -1M\n",
			`handlers config handlers.yml line 3: class Resize: memory "-1M": must not be negative (0 means no limit)`},
		{"classes:\n  Resize:\n    procs: -2\n",
			`handlers config handlers.yml line 3: class Resize: procs "-2": must not be negative (0 means no limit)`},
		{"classes:\n  Resize:\n    procs: many\n",
			`handlers config handlers.yml line 3: class Resize: procs "many": want a whole number such as 16`},
		{"classes:\n  Resize:\n    cpu: soon\n",
			`handlers config handlers.yml line 3: class Resize: cpu "soon": want a duration such as 30s, 2m or 1h30m`},
		{"classes:\n  Resize:\n    timeout: -5s\n",
			`handlers config handlers.yml line 3: class Resize: timeout "-5s": must not be negative (0 means no limit)`},
		{"classes:\n  Resize:\n    max_output:\n",
			`handlers config handlers.yml line 3: class Resize: max_output: want a value, such as 512M or 2G`},
		{"classes:\n  Resize:\n    env:\n      RESQUE_QUEUE: x\n",
			`handlers config handlers.yml line 4: class Resize: env "RESQUE_QUEUE": RESQUE_* and RESQUED_* are resqued's own, set for every job (docs/handlers.md); pick another name`},
		{"classes:\n  Resize:\n    env:\n      9LIVES: x\n",
			`handlers config handlers.yml line 4: class Resize: env "9LIVES": a variable name is letters, digits and _, not starting with a digit`},
		{"classes:\n  Resize:\n    env: [A]\n",
			`handlers config handlers.yml line 3: class Resize: env: want a mapping of names to values, such as MAGICK_THREAD_LIMIT: "1"`},
		{"classes:\n  Resize:\n    memory: 1M\n    memory: 2M\n",
			`handlers config handlers.yml line 4: class Resize: memory is given twice`},
		{"classes:\n  Resize: {}\n  Resize: {}\n",
			`handlers config handlers.yml line 3: class Resize is given twice (first on line 2)`},
		{"classes:\n  Bad/Name: {}\n",
			`handlers config handlers.yml line 2: invalid class name "Bad/Name": a class name is Ruby constants joined by "::" (letters, digits, _), with no "/"`},
		{"clases:\n  Resize: {}\n",
			`handlers config handlers.yml line 1: unknown field "clases" (want classes or queues)`},
		{"- Resize\n",
			`handlers config handlers.yml line 1: want a mapping with classes: at the top`},
		{"classes:\n  Resize: 5\n",
			`handlers config handlers.yml line 2: class Resize: want a mapping of settings (memory, cpu, timeout, max_output, procs, env, concurrency, concurrency_key, rate, rate_key, unique)`},
		{"classes:\n  Report:\n    concurrency: lots\n",
			`handlers config handlers.yml line 3: class Report: concurrency "lots": want a whole number such as 16`},
		{"classes:\n  Report:\n    rate: 10/fortnight\n",
			`handlers config handlers.yml line 3: class Report: rate "10/fortnight": want starts per period, such as 10/s, 100/m or 1000/h`},
		{"classes:\n  Report:\n    rate: 0/s\n",
			`handlers config handlers.yml line 3: class Report: rate "0/s": want starts per period, such as 10/s, 100/m or 1000/h (the count a whole number above 0)`},
		{"classes:\n  Report:\n    concurrency: 2\n    concurrency_key: customer_id\n",
			`handlers config handlers.yml line 4: class Report: concurrency_key "customer_id": want a path such as args[0] or args[0].customer_id`},
		{"classes:\n  Report:\n    rate_key: args[0]\n",
			`handlers config handlers.yml line 3: class Report: rate_key is set without rate: say how many, such as rate: 10/s or 100/m`},
		{"classes: [\n",
			`handlers config handlers.yml line 1: did not find expected node content`},
	} {
		_, err := handlerconfig.Parse("conf/handlers.yml", []byte(tc.yaml))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q):\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"512M": 512 << 20, "512MiB": 512 << 20, "512MB": 512 << 20, "2G": 2 << 30, "100k": 100 << 10,
		"100K": 100 << 10, "4096": 4096, "1.5G": 3 << 29, "0": 0, "1T": 1 << 40, "10B": 10,
	} {
		if got, err := handlerconfig.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "5X", "M", "1e3", "-1", "1.2.3M", "NaN"} {
		if _, err := handlerconfig.ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30s": 30 * time.Second, "2m": 2 * time.Minute, "1h30m": 90 * time.Minute, "30": 30 * time.Second,
		"1.5": 1500 * time.Millisecond, "0": 0,
	} {
		if got, err := handlerconfig.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-1", "-3s", "Inf"} {
		if _, err := handlerconfig.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q): no error", in)
		}
	}
}

func TestLoad_unhandled(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Resize"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "handlers.yml")
	if err := os.WriteFile(path, []byte("classes:\n  Resize: {memory: 1G}\n  Gone: {cpu: 1s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := handlerconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.New(runner.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Gone"}, c.Unhandled(r)); diff != "" {
		t.Errorf("Unhandled (-want +got):\n%s", diff)
	}
	if _, err := handlerconfig.Load(filepath.Join(dir, "missing.yml")); err == nil {
		t.Error("Load of a missing file: no error")
	}
}

func TestParse_limits(t *testing.T) {
	c, err := handlerconfig.Parse("handlers.yml", []byte(`classes:
  Report:
    concurrency: 3
    concurrency_key: args[0].customer_id
    rate: 100/m
  Mail:
    rate: 10/s
  Resize:
    memory: 1G
`))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits()
	if got := l.Classes(); len(got) != 2 || got[0] != "Mail" || got[1] != "Report" {
		t.Fatalf("limited classes = %v, want [Mail Report]", got)
	}
	r, _ := l.Class("Report")
	if r.Concurrency != 3 || r.ConcurrencyKey.String() != "args[0].customer_id" || r.Rate != 100 || r.Per != time.Minute || r.RateKey != nil {
		t.Errorf("Report = %+v", r)
	}
	if conc, rate, _ := l.Names("Report", []byte(`[{"customer_id":7}]`)); conc != "Report:7" || rate != "Report" {
		t.Errorf("names = %q, %q", conc, rate)
	}
	if m, _ := l.Class("Mail"); m.Rate != 10 || m.Per != time.Second || m.Concurrency != 0 {
		t.Errorf("Mail = %+v", m)
	}
	if none, _ := handlerconfig.Parse("h.yml", []byte("classes:\n  Resize:\n    memory: 1G\n")); none.Limits() != nil {
		t.Error("a config without limits gives limits")
	}
	for in, want := range map[string]handlerconfig.Rate{"10/s": {10, time.Second}, "100/m": {100, time.Minute}, "1000/h": {1000, time.Hour}, "5/2s": {5, 2 * time.Second}} {
		if got, err := handlerconfig.ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v", in, got, err)
		}
	}
}

func TestParse_queues(t *testing.T) {
	c, err := handlerconfig.Parse("handlers.yml", []byte(`classes:
  Report:
    concurrency: 3
queues:
  reports:
    concurrency: 2
  mail: {concurrency: 5}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]handlerconfig.Queue{"reports": {Concurrency: 2, Line: 5}, "mail": {Concurrency: 5, Line: 7}}
	if diff := cmp.Diff(want, c.Queues); diff != "" {
		t.Errorf("Queues (-want +got):\n%s", diff)
	}
	l := c.Limits()
	if got := l.Queues(); len(got) != 2 || got[0] != "mail" || got[1] != "reports" {
		t.Errorf("limited queues = %v, want [mail reports]", got)
	}
	if n, ok := l.Queue("reports"); !ok || n != 2 {
		t.Errorf("limit of reports = %d, %v; want 2", n, ok)
	}
	if r, ok := l.Class("Report"); !ok || r.Concurrency != 3 {
		t.Errorf("Report = %+v, %v; the class's limit is kept", r, ok)
	}
	// Queues alone limit too.
	only, err := handlerconfig.Parse("h.yml", []byte("queues:\n  reports: {concurrency: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := only.Limits().Queue("reports"); !ok || n != 1 {
		t.Errorf("queue limit without class limits = %d, %v", n, ok)
	}
	if none, err := handlerconfig.Parse("h.yml", []byte("queues:\n")); err != nil || none.Limits() != nil {
		t.Errorf("empty queues: = %v, %v; want no limits", none.Limits(), err)
	}

	for _, tc := range []struct{ yaml, want string }{
		{"queues:\n  reports:\n    concurency: 2\n",
			`handlers config handlers.yml line 3: queue reports: unknown field "concurency" (want concurrency)`},
		{"queues:\n  reports:\n    concurrency: 0\n",
			`handlers config handlers.yml line 3: queue reports: concurrency "0": want a whole number above 0, such as 2 (leave the queue out for no limit)`},
		{"queues:\n  reports:\n    concurrency: -1\n",
			`handlers config handlers.yml line 3: queue reports: concurrency "-1": want a whole number above 0, such as 2 (leave the queue out for no limit)`},
		{"queues:\n  reports:\n    concurrency: many\n",
			`handlers config handlers.yml line 3: queue reports: concurrency "many": want a whole number above 0, such as 2 (leave the queue out for no limit)`},
		{"queues:\n  reports:\n    concurrency:\n",
			`handlers config handlers.yml line 3: queue reports: concurrency: want a value, such as 2`},
		{"queues:\n  reports:\n    concurrency: 1\n    concurrency: 2\n",
			`handlers config handlers.yml line 4: queue reports: concurrency is given twice`},
		{"queues:\n  reports: {}\n",
			`handlers config handlers.yml line 2: queue reports: no concurrency: say how many jobs of the queue may run at once, such as concurrency: 2`},
		{"queues:\n  reports:\n",
			`handlers config handlers.yml line 2: queue reports: want a mapping of settings (concurrency), such as concurrency: 2`},
		{"queues:\n  \"*\": {concurrency: 1}\n",
			`handlers config handlers.yml line 2: queue *: a limit is set on a queue by its name, not a pattern (*, !x)`},
		{"queues:\n  \"!low\": {concurrency: 1}\n",
			`handlers config handlers.yml line 2: queue !low: a limit is set on a queue by its name, not a pattern (*, !x)`},
		{"queues:\n  high*: {concurrency: 1}\n",
			`handlers config handlers.yml line 2: queue high*: a limit is set on a queue by its name, not a pattern (*, !x)`},
		{"queues:\n  \"a:b\": {concurrency: 1}\n",
			`handlers config handlers.yml line 2: queue name "a:b": must not contain a comma, colon or whitespace`},
		{"queues:\n  reports: {concurrency: 1}\n  reports: {concurrency: 2}\n",
			`handlers config handlers.yml line 3: queue reports is given twice (first on line 2)`},
		{"queues: [reports]\n",
			`handlers config handlers.yml line 1: queues: want a mapping of queue names to their settings, such as reports: {concurrency: 2}`},
	} {
		_, err := handlerconfig.Parse("handlers.yml", []byte(tc.yaml))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q):\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

func TestParse_unique(t *testing.T) {
	c, err := handlerconfig.Parse("handlers.yml", []byte(`classes:
  Mail:
    unique: true
  Report:
    unique: 6h
  Sync:
    unique: 90
  Plain:
    unique: false
`))
	if err != nil {
		t.Fatal(err)
	}
	jobs := c.Jobs(runner.Limits{})
	for class, want := range map[string]time.Duration{"Mail": 24 * time.Hour, "Report": 6 * time.Hour, "Sync": 90 * time.Second, "Plain": 0} {
		if got := jobs[class].Unique; got != want {
			t.Errorf("%s: unique TTL %s, want %s", class, got, want)
		}
	}
	if c.Classes["Plain"].Unique != nil {
		t.Error("unique: false gives a TTL")
	}
	if c.Limits() != nil {
		t.Error("unique alone makes concurrency or rate limits")
	}
	for _, tc := range []struct{ value, want string }{
		{"0", `handlers config handlers.yml line 3: class Mail: unique "0": the lock's TTL must be above 0: a lock that expires at once locks nothing (false: not unique)`},
		{"-5m", `handlers config handlers.yml line 3: class Mail: unique "-5m": the lock's TTL must be above 0: a lock that expires at once locks nothing (false: not unique)`},
		{"1.5s", `handlers config handlers.yml line 3: class Mail: unique "1.5s": want whole seconds`},
		{"500ms", `handlers config handlers.yml line 3: class Mail: unique "500ms": want at least 1s; the lock must outlive the job's wait and run`},
		{"always", `handlers config handlers.yml line 3: class Mail: unique "always": want true (a 24h lock), false, or the lock's TTL such as 6h`},
		{"", `handlers config handlers.yml line 3: class Mail: unique: want a value, such as true or 6h`},
	} {
		_, err := handlerconfig.Parse("handlers.yml", []byte("classes:\n  Mail:\n    unique: "+tc.value+"\n"))
		if err == nil || err.Error() != tc.want {
			t.Errorf("unique: %s:\n got %v\nwant %s", tc.value, err, tc.want)
		}
	}
}

package handlerconfig

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
)

// Config is a parsed handlers config file.
type Config struct {
	// Path is the file it was read from, as given.
	Path string
	// Classes holds each class's settings, by class name.
	Classes map[string]Class
	// Queues holds each queue's settings (the top-level queues:), by
	// queue name.
	Queues map[string]Queue
}

// Queue is what the file says of one queue.
type Queue struct {
	// Concurrency is the most jobs taken from the queue running at once
	// across every worker that shares the Redis, whatever their class
	// (a job whose class has a limit too respects both). See
	// docs/handlers.md.
	Concurrency int
	// Line is where the queue starts in the file.
	Line int
}

// queueFields are a queue's known fields.
var queueFields = []string{"concurrency"}

// Class is what the file says of one class. A nil field was left out:
// the flag's default applies.
type Class struct {
	Memory    *int64         // bytes
	CPU       *time.Duration // CPU time
	Timeout   *time.Duration // wall clock; 0 means the --timeout default
	MaxOutput *int64         // bytes of stdout and stderr
	Procs     *int
	// Env holds "NAME=value" entries, sorted by name.
	Env []string
	// Concurrency is the most jobs of the class running at once across
	// every worker that shares the Redis (0 or nil: no limit), per value
	// of ConcurrencyKey when it is set. Rate is the most starts per
	// period, per value of RateKey when set. See docs/handlers.md.
	Concurrency    *int
	ConcurrencyKey *queue.ArgPath
	Rate           *Rate
	RateKey        *queue.ArgPath
	// Unique makes every job of the class a unique job (docs/handlers.md,
	// Unique jobs), holding its resque-loner lock for this TTL, even when
	// its payload has no "unique" (a Ruby app's resque-loner enqueued
	// it); nil: only jobs whose payload says so.
	Unique *time.Duration
	// Line is where the class starts in the file.
	Line int
}

// fields are a class's known fields, in the order error messages list
// them.
var fields = []string{"memory", "cpu", "timeout", "max_output", "procs", "env", "concurrency", "concurrency_key", "rate", "rate_key", "unique"}

// Rate is a rate limit: at most N starts per Per.
type Rate struct {
	N   int
	Per time.Duration
}

// Limits returns the concurrency and rate limits the config sets, for
// the reserve (nil when it sets none: the reserve then costs what it
// does without limits).
func (c *Config) Limits() *queue.Limits {
	if c == nil {
		return nil
	}
	m := map[string]queue.ClassLimit{}
	qs := map[string]int{}
	for name, q := range c.Queues {
		qs[name] = q.Concurrency
	}
	for name, cl := range c.Classes {
		var l queue.ClassLimit
		if cl.Concurrency != nil {
			l.Concurrency, l.ConcurrencyKey = *cl.Concurrency, cl.ConcurrencyKey
		}
		if cl.Rate != nil {
			l.Rate, l.Per, l.RateKey = cl.Rate.N, cl.Rate.Per, cl.RateKey
		}
		m[name] = l
	}
	return queue.NewLimits(m).WithQueues(qs)
}

// ParseRate reads a rate limit: a count of starts per second, minute or
// hour, as 10/s, 100/m or 1000/h (also /sec, /min, /hour, or a
// duration such as 10/5s).
func ParseRate(s string) (Rate, error) {
	const want = "want starts per period, such as 10/s, 100/m or 1000/h"
	num, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, errors.New(want)
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n <= 0 {
		return Rate{}, errors.New(want + " (the count a whole number above 0)")
	}
	var d time.Duration
	switch strings.ToLower(strings.TrimSpace(per)) {
	case "s", "sec", "second":
		d = time.Second
	case "m", "min", "minute":
		d = time.Minute
	case "h", "hour":
		d = time.Hour
	default:
		if d, err = time.ParseDuration(strings.TrimSpace(per)); err != nil || d < time.Millisecond {
			return Rate{}, errors.New(want)
		}
	}
	return Rate{N: n, Per: d}, nil
}

// ParseUnique reads a class's unique: true is queue.DefaultUniqueTTL,
// false not unique (ok false), and a duration (6h, 30m, or plain
// seconds) the lock's TTL: whole seconds, at least one.
func ParseUnique(s string) (ttl time.Duration, ok bool, err error) {
	const want = "want true (a 24h lock), false, or the lock's TTL such as 6h"
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "true":
		return queue.DefaultUniqueTTL, true, nil
	case "false":
		return 0, false, nil
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 100*365*24*3600 {
			return 0, false, errors.New(want)
		}
		ttl = time.Duration(f * float64(time.Second))
	} else if ttl, err = time.ParseDuration(t); err != nil {
		return 0, false, errors.New(want)
	}
	if ttl <= 0 {
		return 0, false, errors.New("the lock's TTL must be above 0: a lock that expires at once locks nothing (false: not unique)")
	}
	if err := queue.ValidateUniqueTTL(ttl); err != nil {
		return 0, false, errors.New(strings.TrimPrefix(err.Error(), "unique TTL "+ttl.String()+": "))
	}
	return ttl, true, nil
}

// Job is what a class's jobs are given: their limits (the defaults
// overridden field by field), their own timeout (0: the runner's) and
// extra environment entries.
type Job struct {
	Limits  *runner.Limits
	Timeout time.Duration
	Env     []string
	// Unique is the TTL of the unique lock every job of the class holds
	// (Class.Unique); 0: only jobs whose payload says "unique".
	Unique time.Duration
}

// Jobs merges each class's settings with the defaults (the flags'), so
// that finding a job's is one map read.
func (c *Config) Jobs(defaults runner.Limits) map[string]Job {
	if c == nil {
		return nil
	}
	jobs := make(map[string]Job, len(c.Classes))
	for name, cl := range c.Classes {
		l := defaults
		if cl.Memory != nil {
			l.Memory = *cl.Memory
		}
		if cl.CPU != nil {
			l.CPU = *cl.CPU
		}
		if cl.MaxOutput != nil {
			l.Output = *cl.MaxOutput
		}
		if cl.Procs != nil {
			l.Procs = *cl.Procs
		}
		j := Job{Limits: &l, Env: cl.Env}
		if cl.Timeout != nil {
			j.Timeout = *cl.Timeout
		}
		if cl.Unique != nil {
			j.Unique = *cl.Unique
		}
		jobs[name] = j
	}
	return jobs
}

// Load reads and checks the handlers config file at path. Its errors
// read "handlers config FILE line N: class C: ..." for the person who
// wrote the file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read handlers config: %w", err)
	}
	return Parse(path, b)
}

// Parse checks the handlers config in b; path names it in errors.
func Parse(path string, b []byte) (*Config, error) {
	name := filepath.Base(path)
	c := &Config{Path: path, Classes: map[string]Class{}, Queues: map[string]Queue{}}
	bad := func(n *yaml.Node, format string, a ...any) error {
		return fmt.Errorf("handlers config %s line %d: %s", name, n.Line, fmt.Sprintf(format, a...))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if strings.HasPrefix(msg, "line ") {
			return nil, fmt.Errorf("handlers config %s %s", name, msg) // "line N: ..."
		}
		return nil, fmt.Errorf("handlers config %s: %s", name, msg)
	}
	if len(doc.Content) == 0 {
		return c, nil // empty: nothing configured
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, bad(top, "want a mapping with classes: at the top")
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Value != "classes" && k.Value != "queues" {
			return nil, bad(k, "unknown field %q (want classes or queues)", k.Value)
		}
		if v.Tag == "!!null" {
			continue
		}
		if k.Value == "queues" {
			if err := c.parseQueues(v, bad); err != nil {
				return nil, err
			}
			continue
		}
		if v.Kind != yaml.MappingNode {
			return nil, bad(v, "classes: want a mapping of class names to their settings")
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			ck, cv := v.Content[j], v.Content[j+1]
			if err := runner.ValidateClass(ck.Value); err != nil {
				return nil, bad(ck, "%s", err)
			}
			if prev, dup := c.Classes[ck.Value]; dup {
				return nil, bad(ck, "class %s is given twice (first on line %d)", ck.Value, prev.Line)
			}
			cl, err := parseClass(cv)
			if err != nil {
				var fe *fieldError
				if errors.As(err, &fe) {
					return nil, bad(fe.n, "class %s: %s", ck.Value, fe.msg)
				}
				return nil, err
			}
			cl.Line = ck.Line
			c.Classes[ck.Value] = cl
		}
	}
	return c, nil
}

// parseQueues reads the top-level queues: mapping n into c.Queues; bad
// builds its errors.
func (c *Config) parseQueues(n *yaml.Node, bad func(*yaml.Node, string, ...any) error) error {
	if n.Kind != yaml.MappingNode {
		return bad(n, "queues: want a mapping of queue names to their settings, such as reports: {concurrency: 2}")
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		qk, qv := n.Content[j], n.Content[j+1]
		name := qk.Value
		if queue.IsPattern(name) {
			return bad(qk, "queue %s: a limit is set on a queue by its name, not a pattern (*, !x)", name)
		}
		if err := queue.ValidateQueueName(name); err != nil {
			return bad(qk, "%s", err)
		}
		if prev, dup := c.Queues[name]; dup {
			return bad(qk, "queue %s is given twice (first on line %d)", name, prev.Line)
		}
		q, err := parseQueue(qv)
		if err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				return bad(fe.n, "queue %s: %s", name, fe.msg)
			}
			return err
		}
		q.Line = qk.Line
		c.Queues[name] = q
	}
	return nil
}

// parseQueue reads one queue's settings.
func parseQueue(n *yaml.Node) (Queue, error) {
	var q Queue
	if n.Kind != yaml.MappingNode {
		return q, fieldErr(n, "want a mapping of settings (%s), such as concurrency: 2", strings.Join(queueFields, ", "))
	}
	seen, err := eachField(n, queueFields, func(k, v *yaml.Node) error {
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			return fieldErr(v, "%s: want a value, such as 2", k.Value)
		}
		p, err := strconv.Atoi(strings.TrimSpace(v.Value))
		if err != nil || p <= 0 {
			return fieldErr(v, "concurrency %q: want a whole number above 0, such as 2 (leave the queue out for no limit)", v.Value)
		}
		q.Concurrency = p
		return nil
	})
	if err != nil {
		return q, err
	}
	if !seen["concurrency"] {
		return q, fieldErr(n, "no concurrency: say how many jobs of the queue may run at once, such as concurrency: 2")
	}
	return q, nil
}

// eachField walks mapping n's fields for parseClass and parseQueue: a
// field not in known, or given twice, is refused in the same words for
// both; read reads each value. It returns the fields seen.
func eachField(n *yaml.Node, known []string, read func(k, v *yaml.Node) error) (map[string]bool, error) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(known, k.Value) {
			return seen, fieldErr(k, "unknown field %q (want %s)", k.Value, strings.Join(known, ", "))
		}
		if seen[k.Value] {
			return seen, fieldErr(k, "%s is given twice", k.Value)
		}
		seen[k.Value] = true
		if err := read(k, v); err != nil {
			return seen, err
		}
	}
	return seen, nil
}

// fieldError is a problem at node n of a class.
type fieldError struct {
	n   *yaml.Node
	msg string
}

func (e *fieldError) Error() string { return e.msg }

func fieldErr(n *yaml.Node, format string, a ...any) error {
	return &fieldError{n: n, msg: fmt.Sprintf(format, a...)}
}

// parseClass reads one class's settings.
func parseClass(n *yaml.Node) (Class, error) {
	var cl Class
	if n.Tag == "!!null" {
		return cl, nil // a class with nothing set: the defaults
	}
	if n.Kind != yaml.MappingNode {
		return cl, fieldErr(n, "want a mapping of settings (%s)", strings.Join(fields, ", "))
	}
	seen, err := eachField(n, fields, func(k, v *yaml.Node) error {
		if k.Value == "env" {
			env, err := parseEnv(v)
			if err != nil {
				return err
			}
			cl.Env = env
			return nil
		}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			return fieldErr(v, "%s: want a value, such as %s", k.Value, example(k.Value))
		}
		switch k.Value {
		case "memory", "max_output":
			size, err := ParseSize(v.Value)
			if err != nil {
				return fieldErr(v, "%s %q: %s", k.Value, v.Value, err)
			}
			if k.Value == "memory" {
				cl.Memory = &size
			} else {
				cl.MaxOutput = &size
			}
		case "cpu", "timeout":
			d, err := ParseDuration(v.Value)
			if err != nil {
				return fieldErr(v, "%s %q: %s", k.Value, v.Value, err)
			}
			if k.Value == "cpu" {
				cl.CPU = &d
			} else {
				cl.Timeout = &d
			}
		case "procs", "concurrency":
			p, err := ParseCount(v.Value)
			if err != nil {
				return fieldErr(v, "%s %q: %s", k.Value, v.Value, err)
			}
			if k.Value == "procs" {
				cl.Procs = &p
			} else {
				cl.Concurrency = &p
			}
		case "concurrency_key", "rate_key":
			p, err := queue.ParseArgPath(v.Value)
			if err != nil {
				return fieldErr(v, "%s %q: %s", k.Value, v.Value, err)
			}
			if k.Value == "concurrency_key" {
				cl.ConcurrencyKey = p
			} else {
				cl.RateKey = p
			}
		case "rate":
			r, err := ParseRate(v.Value)
			if err != nil {
				return fieldErr(v, "rate %q: %s", v.Value, err)
			}
			cl.Rate = &r
		case "unique":
			ttl, ok, err := ParseUnique(v.Value)
			if err != nil {
				return fieldErr(v, "unique %q: %s", v.Value, err)
			}
			if ok {
				cl.Unique = &ttl
			}
		}
		return nil
	})
	if err != nil {
		return cl, err
	}
	for _, f := range []struct{ key, of string }{{"concurrency_key", "concurrency"}, {"rate_key", "rate"}} {
		if seen[f.key] && !seen[f.of] {
			return cl, fieldErr(n, "%s is set without %s: say how many, such as %s: %s", f.key, f.of, f.of, example(f.of))
		}
	}
	return cl, nil
}

// example is a value of field, for messages.
func example(field string) string {
	switch field {
	case "memory", "max_output":
		return "512M or 2G"
	case "cpu", "timeout":
		return "30s or 2m"
	case "concurrency":
		return "3"
	case "rate":
		return "10/s or 100/m"
	case "concurrency_key", "rate_key":
		return "args[0].customer_id"
	case "unique":
		return "true or 6h"
	default:
		return "16"
	}
}

// parseEnv reads a class's env: a mapping of names to string values.
func parseEnv(n *yaml.Node) ([]string, error) {
	if n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fieldErr(n, `env: want a mapping of names to values, such as MAGICK_THREAD_LIMIT: "1"`)
	}
	var env []string
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if err := CheckEnvName(k.Value); err != nil {
			return nil, fieldErr(k, "env %s", err)
		}
		if seen[k.Value] {
			return nil, fieldErr(k, "env %s is given twice", k.Value)
		}
		seen[k.Value] = true
		if v.Kind != yaml.ScalarNode {
			return nil, fieldErr(v, "env %s: want a plain value (quote it: %s: \"1\")", k.Value, k.Value)
		}
		val := v.Value
		if v.Tag == "!!null" {
			val = ""
		}
		if strings.ContainsRune(val, 0) {
			return nil, fieldErr(v, "env %s: a value may not hold a NUL byte", k.Value)
		}
		env = append(env, k.Value+"="+val)
	}
	slices.Sort(env)
	return env, nil
}

// CheckEnvName checks the name of an environment variable a config may
// set: letters, digits and _, not starting with a digit, and not one of
// resqued's own RESQUE_* and RESQUED_* variables.
func CheckEnvName(name string) error {
	if name == "" {
		return errors.New(`"": a variable needs a name`)
	}
	for i, c := range name {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("%q: a variable name is letters, digits and _, not starting with a digit", name)
		}
	}
	if strings.HasPrefix(name, "RESQUE_") || strings.HasPrefix(name, "RESQUED_") {
		return fmt.Errorf("%q: RESQUE_* and RESQUED_* are resqued's own, set for every job (docs/handlers.md); pick another name", name)
	}
	return nil
}

// ParseSize reads a size in bytes: plain bytes, or a number with a
// binary unit as systemd writes them: k, M, G, T, optionally followed by
// "iB" or "B" (512M, 512MiB, 2G, 100k, 1.5G). It refuses negative sizes.
func ParseSize(s string) (int64, error) {
	const want = "want a size such as 512M or 2G"
	t := strings.TrimSpace(s)
	num, mult := t, int64(1)
	for i, c := range t {
		if (c < '0' || c > '9') && c != '.' && c != '-' && c != '+' {
			num = strings.TrimSpace(t[:i])
			unit := strings.TrimSpace(t[i:])
			switch strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(unit, "iB"), "B")) {
			case "":
				mult = 1 // "100B"
			case "K":
				mult = 1 << 10
			case "M":
				mult = 1 << 20
			case "G":
				mult = 1 << 30
			case "T":
				mult = 1 << 40
			default:
				return 0, errors.New(want)
			}
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New(want)
	}
	if f < 0 {
		return 0, errors.New("must not be negative (0 means no limit)")
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, errors.New("too large")
	}
	return int64(v), nil
}

// ParseDuration reads a duration: Go's form (30s, 2m, 1h30m) or plain
// seconds (30, 1.5). It refuses negative durations.
func ParseDuration(s string) (time.Duration, error) {
	const want = "want a duration such as 30s, 2m or 1h30m"
	t := strings.TrimSpace(s)
	var d time.Duration
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxInt64/float64(time.Second) {
			return 0, errors.New(want)
		}
		d = time.Duration(f * float64(time.Second))
	} else if d, err = time.ParseDuration(t); err != nil {
		return 0, errors.New(want)
	}
	if d < 0 {
		return 0, errors.New("must not be negative (0 means no limit)")
	}
	return d, nil
}

// ParseCount reads a whole number that is not negative.
func ParseCount(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	switch {
	case err != nil:
		return 0, errors.New("want a whole number such as 16")
	case n < 0:
		return 0, errors.New("must not be negative (0 means no limit)")
	}
	return n, nil
}

// Unhandled returns, sorted, the classes in c that have no handler in
// r's directory, for a warning at start: a class may be configured
// before its handler is deployed.
func (c *Config) Unhandled(r *runner.Runner) []string {
	if c == nil {
		return nil
	}
	var out []string
	for name := range c.Classes {
		if _, err := r.Resolve(name); errors.Is(err, runner.ErrNoHandler) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

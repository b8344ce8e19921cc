package recurring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
)

// Schedule is a parsed schedule file, entries in file order.
type Schedule struct {
	Entries []*Entry

	// onFire, when set (by tests), is called after each push (pushed)
	// and each tick lost to another daemon (!pushed).
	onFire func(e *Entry, tick time.Time, pushed bool)
}

// Entry is one recurring job.
type Entry struct {
	Name        string
	Class       string
	Queue       string
	Args        json.RawMessage // always a JSON array
	Description string
	// Cron is the cron expression as written, empty for "every" entries.
	Cron string
	// Every is the interval of an "every" entry, zero for cron entries.
	Every time.Duration
	// FirstIn, for an "every" entry, asks for one run this long after Run
	// starts instead of waiting for the first tick (see Run).
	FirstIn time.Duration
	// RailsEnv is the entry's rails_env, as written; Skip reports whether
	// it excludes this process (RAILS_ENV, else RACK_ENV, at Load time).
	RailsEnv string
	Skip     bool

	cron cron.Schedule
}

// Load reads and parses the schedule file at path.
func Load(path string) (*Schedule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	s, err := Parse(b, currentEnv())
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", path, err)
	}
	return s, nil
}

func currentEnv() string {
	if e := os.Getenv("RAILS_ENV"); e != "" {
		return e
	}
	return os.Getenv("RACK_ENV")
}

// Parse parses a schedule document. env is the environment name that
// rails_env entries are compared to ("" matches none of them).
func Parse(b []byte, env string) (*Schedule, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	s := &Schedule{}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return s, nil // empty file: nothing scheduled
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return s, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the top level must map entry names to entries", root.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		if k.Kind != yaml.ScalarNode || name == "" {
			return nil, fmt.Errorf("line %d: entry name must be a non-empty string", k.Line)
		}
		if seen[name] {
			return nil, fmt.Errorf("line %d: entry %q is defined twice", k.Line, name)
		}
		seen[name] = true
		e, err := parseEntry(name, v, env)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", name, err)
		}
		s.Entries = append(s.Entries, e)
	}
	return s, nil
}

func parseEntry(name string, n *yaml.Node, env string) (*Entry, error) {
	if strings.ContainsAny(name, "\r\n") {
		return nil, errors.New("name must not contain a line break")
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: must be a mapping with class, queue and cron or every", n.Line)
	}
	e := &Entry{Name: name, Args: json.RawMessage("[]")}
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if fields[k.Value] != nil {
			return nil, fmt.Errorf("line %d: %s is given twice", k.Line, k.Value)
		}
		fields[k.Value] = v
		switch k.Value {
		case "class", "queue", "args", "description", "cron", "every", "rails_env", "persist":
		case "custom_job_class":
			return nil, fmt.Errorf("line %d: custom_job_class is not supported by resqued", k.Line)
		default:
			return nil, fmt.Errorf("line %d: unknown field %q (known: class, queue, args, cron, every, description, rails_env)", k.Line, k.Value)
		}
	}
	str := func(field string) (string, error) {
		v := fields[field]
		if v == nil || (v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
			return "", nil
		}
		if v.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("line %d: %s must be a string", v.Line, field)
		}
		return v.Value, nil
	}
	var err error
	if e.Class, err = str("class"); err != nil {
		return nil, err
	}
	if e.Class == "" {
		return nil, errors.New("class is missing")
	}
	if err := runner.ValidateClass(e.Class); err != nil {
		return nil, fmt.Errorf("class %q: %w", e.Class, err)
	}
	if e.Queue, err = str("queue"); err != nil {
		return nil, err
	}
	if e.Queue == "" {
		return nil, errors.New("queue is missing (resqued cannot read a Ruby class's @queue: name the queue in the entry)")
	}
	if err := queue.ValidateQueueName(e.Queue); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if e.Description, err = str("description"); err != nil {
		return nil, err
	}
	if e.RailsEnv, err = str("rails_env"); err != nil {
		return nil, err
	}
	if e.RailsEnv != "" {
		e.Skip = true
		for _, want := range strings.FieldsFunc(e.RailsEnv, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if env != "" && want == env {
				e.Skip = false
			}
		}
	}
	if v := fields["args"]; v != nil {
		if e.Args, err = argsJSON(v); err != nil {
			return nil, fmt.Errorf("args: %w", err)
		}
	}
	cronN, everyN := present(fields["cron"]), present(fields["every"])
	switch {
	case cronN == nil && everyN == nil:
		return nil, errors.New("needs cron or every")
	case cronN != nil && everyN != nil:
		return nil, errors.New("has both cron and every: give exactly one")
	case cronN != nil:
		spec, opts, err := intervalValue("cron", cronN)
		if err != nil {
			return nil, err
		}
		if len(opts) > 0 {
			return nil, fmt.Errorf("cron: options are not supported for cron entries (got %s)", strings.Join(opts.keys(), ", "))
		}
		e.Cron = spec
		if e.cron, err = parseCron(spec); err != nil {
			return nil, fmt.Errorf("cron %q: %w", spec, err)
		}
	default:
		spec, opts, err := intervalValue("every", everyN)
		if err != nil {
			return nil, err
		}
		if e.Every, err = ParseDuration(spec); err != nil {
			return nil, fmt.Errorf("every: %w", err)
		}
		for k, v := range opts {
			if k != "first_in" {
				return nil, fmt.Errorf("every: option %q is not supported (only first_in)", k)
			}
			if e.FirstIn, err = ParseDuration(v); err != nil {
				return nil, fmt.Errorf("every: first_in: %w", err)
			}
		}
	}
	return e, nil
}

func present(n *yaml.Node) *yaml.Node {
	if n == nil || (n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "")) {
		return nil
	}
	return n
}

type options map[string]string

func (o options) keys() []string {
	var ks []string
	for k := range o {
		ks = append(ks, k)
	}
	return ks
}

// intervalValue reads "spec" or ["spec", {option: value}], the two forms
// resque-scheduler accepts for cron and every.
func intervalValue(field string, n *yaml.Node) (string, options, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil, nil
	case yaml.SequenceNode:
		if len(n.Content) == 0 || len(n.Content) > 2 || n.Content[0].Kind != yaml.ScalarNode {
			return "", nil, fmt.Errorf("line %d: %s must be a string or [string, {options}]", n.Line, field)
		}
		opts := options{}
		if len(n.Content) == 2 {
			m := n.Content[1]
			if m.Kind != yaml.MappingNode {
				return "", nil, fmt.Errorf("line %d: %s: the second element must be a mapping of options such as {first_in: 10s}", m.Line, field)
			}
			for i := 0; i+1 < len(m.Content); i += 2 {
				k, v := m.Content[i], m.Content[i+1]
				if v.Kind != yaml.ScalarNode {
					return "", nil, fmt.Errorf("line %d: %s: option %s must be a string", v.Line, field, k.Value)
				}
				// Ruby symbols written as :first_in are the same option.
				opts[strings.TrimPrefix(k.Value, ":")] = v.Value
			}
		}
		return n.Content[0].Value, opts, nil
	}
	return "", nil, fmt.Errorf("line %d: %s must be a string or [string, {options}]", n.Line, field)
}

// argsJSON turns any YAML value into a JSON array the way resque-scheduler
// does: a list stays a list, anything else becomes a one-element list.
func argsJSON(n *yaml.Node) (json.RawMessage, error) {
	var v interface{}
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	if v == nil {
		return json.RawMessage("[]"), nil
	}
	v, err := jsonable(v)
	if err != nil {
		return nil, err
	}
	if _, ok := v.([]interface{}); !ok {
		v = []interface{}{v}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimSpace(buf.Bytes())), nil
}

// jsonable converts maps with non-string keys and values JSON cannot hold.
func jsonable(v interface{}) (interface{}, error) {
	switch x := v.(type) {
	case map[string]interface{}:
		for k, e := range x {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(x))
		for k, e := range x {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case []interface{}:
		for i, e := range x {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%v cannot be written as JSON", x)
		}
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	}
	return v, nil
}

// durationPart is compiled on first use: only --schedule needs it, and
// every resqued process would compile it at start.
var durationPart = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)([yMwdhms]?)`)
})

var durationUnits = map[string]time.Duration{
	"y": 365 * 24 * time.Hour,
	"M": 30 * 24 * time.Hour,
	"w": 7 * 24 * time.Hour,
	"d": 24 * time.Hour,
	"h": time.Hour,
	"m": time.Minute,
	"s": time.Second,
	"":  time.Second,
}

// ParseDuration parses a rufus-scheduler duration as resque-scheduler
// users write them: "30s", "5m", "1h", "1d", "1w", "2M" (30 days), "1y"
// (365 days), combinations such as "1h30m", and a bare number of seconds.
// The result must be a whole number of seconds, at least one.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	for rest := in; rest != ""; {
		m := durationPart().FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("duration %q: want a number and a unit (s, m, h, d, w, M, y), like 30s or 1h30m", s)
		}
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		d := f * float64(durationUnits[m[2]])
		if d > float64(100*365*24*time.Hour) {
			return 0, fmt.Errorf("duration %q: too long", s)
		}
		total += time.Duration(d)
		rest = rest[len(m[0]):]
		if m[2] == "" && rest != "" {
			return 0, fmt.Errorf("duration %q: a number without a unit must stand alone", s)
		}
	}
	if total < time.Second {
		return 0, fmt.Errorf("duration %q: must be at least 1s", s)
	}
	if total%time.Second != 0 {
		return 0, fmt.Errorf("duration %q: must be a whole number of seconds", s)
	}
	return total, nil
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseCron parses a 5-field cron expression (6 with a leading seconds
// field), a descriptor such as @hourly or @daily, optionally with a time
// zone: "CRON_TZ=Europe/Paris 0 5 * * *" or, as rufus-scheduler writes it,
// "0 5 * * * Europe/Paris". Without one, times are in local time.
func parseCron(spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "@every") {
		return nil, errors.New("@every is not a cron time: use every: instead")
	}
	if f := strings.Fields(spec); len(f) >= 2 && !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") {
		last := f[len(f)-1]
		if strings.ContainsAny(last, "/ABCDEFGHIJKLMNOPQRSTUVWXYZ") && !strings.HasPrefix(last, "@") {
			if _, err := time.LoadLocation(last); err == nil {
				spec = "CRON_TZ=" + last + " " + strings.Join(f[:len(f)-1], " ")
			}
		}
	}
	return cronParser.Parse(spec)
}

// Next returns the entry's first tick strictly after t (whole seconds).
func (e *Entry) Next(t time.Time) time.Time {
	if e.cron != nil {
		return e.cron.Next(t)
	}
	iv := int64(e.Every / time.Second)
	return time.Unix((floorDiv(t.Unix(), iv)+1)*iv, 0)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

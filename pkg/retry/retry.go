// Package retry decides whether a failed job runs again, and when:
// per-class policies from a config file, overridable by the enqueuer in
// the payload, in the spirit of resque-retry. It knows nothing of Redis
// or processes; the worker asks it and schedules the retry.
package retry

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"gopkg.in/yaml.v3"
)

// TempFail is EX_TEMPFAIL: the exit status with which a handler asks to
// be retried. It is retryable under every policy that retries at all.
const TempFail = 75

// DefaultSchedule is resque-retry's exponential backoff: 0, 1 min, 10
// min, 1 h, 3 h, 6 h.
var defaultSchedule = []time.Duration{0, time.Minute, 10 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour}

// Policy says how a class's failures are retried.
type Policy struct {
	// Attempts is how many times a job runs in all; 1 (or 0) means no
	// retry.
	Attempts int `yaml:"attempts" json:"attempts"`
	// Backoff is "exponential" (Delay doubling per attempt, capped at
	// MaxDelay, with ±Jitter), "fixed" (Delay each time) or "schedule"
	// (resque-retry's 0, 1 min, 10 min, 1 h, 3 h, 6 h). Empty means
	// exponential.
	Backoff string `yaml:"backoff" json:"backoff"`
	// Delay is the base delay in seconds. Zero means 10.
	Delay float64 `yaml:"delay" json:"delay"`
	// MaxDelay caps exponential backoff, in seconds. Zero means 6 hours.
	MaxDelay float64 `yaml:"max_delay" json:"max_delay"`
	// Jitter is the fraction (0..1) by which a delay may vary, so that
	// jobs failing together do not retry together. Zero means 0.2.
	Jitter *float64 `yaml:"jitter" json:"jitter"`
	// ExitCodes are the exit statuses that are retried besides 75. Empty
	// means 75 only; [-1] means any failure of the handler (not invalid
	// payloads or missing handlers, which a retry cannot fix).
	ExitCodes []int `yaml:"exit_codes" json:"exit_codes"`

	// builtin marks TempFailPolicy as For returns it.
	builtin bool
}

// TempFailPolicy is the policy of a class that neither a config nor the
// payload gives one: a handler that exits 75 (EX_TEMPFAIL) asks for a
// retry and gets it, 5 runs in all, 30 s doubling per attempt (30 s, 1
// min, 2 min, 4 min), ±20 % jitter, capped at 6 hours. Any other failure
// is final. docs/scheduling.md documents it.
func TempFailPolicy() Policy {
	j := 0.2
	return Policy{Attempts: 5, Backoff: "exponential", Delay: 30, MaxDelay: 6 * 3600, Jitter: &j, builtin: true}
}

// Builtin reports whether p is TempFailPolicy, the one used when nothing
// configured a policy.
func (p Policy) Builtin() bool { return p.builtin }

// isZero reports whether p is the zero Policy: a config's default that
// was left out.
func (p Policy) isZero() bool {
	return p.Attempts == 0 && p.Backoff == "" && p.Delay == 0 && p.MaxDelay == 0 && p.Jitter == nil && len(p.ExitCodes) == 0
}

// Config is a retry config file: a default policy and one per class.
//
//	default:
//	  attempts: 3
//	classes:
//	  Resize:
//	    attempts: 5
//	    backoff: exponential
//	    delay: 30
//	    exit_codes: [75, 3]
//
// A class with no policy of its own gets Default when the file has a
// "default:" (or Default is not the zero Policy), else TempFailPolicy.
type Config struct {
	Default Policy            `yaml:"default"`
	Classes map[string]Policy `yaml:"classes"`

	// hasDefault is set by Load when the file has a "default:" key, so
	// that "default: {}" (no retries) is told from no default at all.
	hasDefault bool
}

// Load reads a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read retry config: %w", err)
	}
	var c Config
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse retry config %s: %w", path, err)
	}
	for name, p := range c.Classes {
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("retry config %s: class %s: %w", path, name, err)
		}
	}
	if err := c.Default.check(); err != nil {
		return nil, fmt.Errorf("retry config %s: default: %w", path, err)
	}
	var keys map[string]yaml.Node
	if yaml.Unmarshal(b, &keys) == nil {
		_, c.hasDefault = keys["default"]
	}
	return &c, nil
}

func (p Policy) check() error {
	switch p.Backoff {
	case "", "exponential", "fixed", "schedule":
	default:
		return fmt.Errorf("backoff %q: want exponential, fixed or schedule", p.Backoff)
	}
	if p.Attempts < 0 || p.Delay < 0 || p.MaxDelay < 0 || (p.Jitter != nil && (*p.Jitter < 0 || *p.Jitter > 1)) {
		return fmt.Errorf("attempts, delay, max_delay must not be negative, jitter must be within 0..1")
	}
	return nil
}

// For returns the policy for class: the enqueuer's override from the
// payload's "retry" field if any, else the class's, else the config's
// default, else TempFailPolicy. Whichever applies does so entirely: a
// policy with attempts 1 retries nothing, not even exit 75. A nil Config
// has no policies of its own.
func (c *Config) For(class string, payloadRetry json.RawMessage) Policy {
	p := TempFailPolicy()
	if c != nil {
		if c.hasDefault || !c.Default.isZero() {
			p = c.Default
		}
		if cp, ok := c.Classes[class]; ok {
			p = cp
		}
	}
	if len(payloadRetry) > 0 {
		var o Policy
		if json.Unmarshal(payloadRetry, &o) == nil && o.check() == nil {
			p = o
		}
	}
	return p
}

// Decide says whether the job's attempt (1 for the first run) that
// failed with exit status code (-1 when it did not exit on its own, e.g.
// a signal) runs again, and after how long.
func (p Policy) Decide(attempt, code int) (bool, time.Duration) {
	if attempt >= p.Attempts {
		return false, 0
	}
	if code != TempFail && !slices.Contains(p.ExitCodes, code) && !slices.Contains(p.ExitCodes, -1) {
		return false, 0
	}
	return true, p.delay(attempt)
}

func (p Policy) delay(attempt int) time.Duration {
	base := p.Delay
	if base == 0 {
		base = 10
	}
	var d time.Duration
	switch p.Backoff {
	case "fixed":
		d = seconds(base)
	case "schedule":
		d = defaultSchedule[min(attempt-1, len(defaultSchedule)-1)]
	default:
		maxd := p.MaxDelay
		if maxd == 0 {
			maxd = 6 * 3600
		}
		d = seconds(min(base*float64(uint64(1)<<min(attempt-1, 30)), maxd))
	}
	jitter := 0.2
	if p.Jitter != nil {
		jitter = *p.Jitter
	}
	if jitter > 0 && d > 0 {
		d = time.Duration(float64(d) * (1 + jitter*(2*rand.Float64()-1)))
	}
	return d
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

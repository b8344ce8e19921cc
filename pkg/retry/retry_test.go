package retry

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "retry.yml")
	os.WriteFile(path, []byte(`
default:
  attempts: 2
classes:
  Resize:
    attempts: 4
    backoff: fixed
    delay: 30
    jitter: 0
    exit_codes: [3]
`), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := c.For("Resize", nil)
	if ok, d := p.Decide(1, 3); !ok || d != 30*time.Second {
		t.Errorf("Resize attempt 1 exit 3: %v %v", ok, d)
	}
	if ok, _ := p.Decide(1, 4); ok {
		t.Error("exit 4 is not retryable for Resize")
	}
	if ok, _ := p.Decide(1, TempFail); !ok {
		t.Error("75 is always retryable")
	}
	if ok, _ := p.Decide(4, 3); ok {
		t.Error("attempt 4 of 4 must not retry")
	}
	// Other classes get the default; the payload overrides both.
	if ok, _ := c.For("Other", nil).Decide(1, TempFail); !ok {
		t.Error("default policy should retry 75 once")
	}
	if ok, _ := c.For("Other", nil).Decide(2, TempFail); ok {
		t.Error("default policy has 2 attempts")
	}
	o := c.For("Resize", []byte(`{"attempts":1}`))
	if ok, _ := o.Decide(1, 3); ok {
		t.Error("payload override to 1 attempt must not retry")
	}
	for _, bad := range []string{"default: {backoff: sometimes}", "classes: {A: {attempts: -1}}", "classes: [1"} {
		os.WriteFile(path, []byte(bad), 0o644)
		if _, err := Load(path); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBackoff(t *testing.T) {
	zero := 0.0
	p := Policy{Attempts: 10, Delay: 1, MaxDelay: 5, Jitter: &zero}
	var got []time.Duration
	for a := 1; a <= 5; a++ {
		_, d := p.Decide(a, TempFail)
		got = append(got, d)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("exponential delays %v, want %v", got, want)
		}
	}
	s := Policy{Attempts: 10, Backoff: "schedule", Jitter: &zero}
	if _, d := s.Decide(3, TempFail); d != 10*time.Minute {
		t.Errorf("schedule attempt 3: %v", d)
	}
	j := Policy{Attempts: 10, Delay: 100, Backoff: "fixed"}
	for i := 0; i < 100; i++ {
		if _, d := j.Decide(1, TempFail); d < 80*time.Second || d > 120*time.Second {
			t.Fatalf("jittered delay %v outside ±20%%", d)
		}
	}
}

// TestTempFailPolicy: with no policy from a config or the payload, exit
// 75 is retried by the built-in policy; anything else is final, and a
// configured policy replaces it entirely.
func TestTempFailPolicy(t *testing.T) {
	for name, c := range map[string]*Config{"nil": nil, "no default": {Classes: map[string]Policy{"Other": {Attempts: 3}}}} {
		p := c.For("Resize", nil)
		if !p.Builtin() || p.Attempts != 5 {
			t.Errorf("%s: policy %+v, want the built-in one with 5 attempts", name, p)
		}
		for i := 0; i < 100; i++ {
			ok, d := p.Decide(1, TempFail)
			if !ok || d < 24*time.Second || d > 36*time.Second {
				t.Fatalf("%s: attempt 1 exit 75: %v after %v, want a retry within 30 s ± 20%%", name, ok, d)
			}
		}
		if ok, d := p.Decide(2, TempFail); !ok || d < 48*time.Second || d > 72*time.Second {
			t.Errorf("%s: attempt 2 exit 75: %v after %v, want a retry within 60 s ± 20%%", name, ok, d)
		}
		if ok, _ := p.Decide(4, TempFail); !ok {
			t.Errorf("%s: attempt 4 of 5 not retried", name)
		}
		if ok, _ := p.Decide(5, TempFail); ok {
			t.Errorf("%s: attempt 5 of 5 retried", name)
		}
		if ok, _ := p.Decide(1, 1); ok {
			t.Errorf("%s: exit 1 retried by the built-in policy", name)
		}
	}
	path := filepath.Join(t.TempDir(), "retry.yml")
	os.WriteFile(path, []byte("default:\n  attempts: 1\n"), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.For("Resize", nil).Decide(1, TempFail); ok {
		t.Error(`"default: attempts: 1" still retries exit 75`)
	}
	os.WriteFile(path, []byte("default: {}\n"), 0o644)
	if c, err = Load(path); err != nil {
		t.Fatal(err)
	}
	if p := c.For("Resize", nil); p.Builtin() {
		t.Error(`an explicit "default: {}" was replaced by the built-in policy`)
	}
	if p := (*Config)(nil).For("Resize", []byte(`{"attempts":1}`)); p.Builtin() {
		t.Error("the payload's retry did not replace the built-in policy")
	}
}

package trace

import (
	"strings"
	"testing"
)

const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParse(t *testing.T) {
	for _, s := range []string{
		valid,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-future",
		"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	} {
		p, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%q): %v", s, err)
			continue
		}
		if got, want := p.TraceIDString(), "4bf92f3577b34da6a3ce929d0e0e4736"; got != want {
			t.Errorf("Parse(%q) trace id %s, want %s", s, got, want)
		}
		if got, want := p.SpanIDString(), "00f067aa0ba902b7"; got != want {
			t.Errorf("Parse(%q) span id %s, want %s", s, got, want)
		}
	}
	if p, _ := Parse(valid); p.String() != valid || !p.Sampled() {
		t.Errorf("round trip: %s, sampled %v", p, p.Sampled())
	}
	for name, s := range map[string]string{
		"empty":           "",
		"short":           valid[:54],
		"long version 00": valid + "-x",
		"version ff":      "ff" + valid[2:],
		"upper hex":       strings.ToUpper(valid),
		"bad version":     "0x" + valid[2:],
		"zero trace id":   "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"zero span id":    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"bad flags":       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
		"no dashes":       "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
		"future no dash":  "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
		"spaces":          " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
	} {
		if p, err := Parse(s); err == nil {
			t.Errorf("%s: Parse(%q) = %v, want an error", name, s, p)
		} else if !strings.HasPrefix(err.Error(), "traceparent") {
			t.Errorf("%s: error %q does not name the traceparent", name, err)
		}
	}
}

func TestChild(t *testing.T) {
	p, _ := Parse(valid)
	c := p.Child()
	if c.TraceID != p.TraceID || c.Flags != p.Flags {
		t.Errorf("child %s of %s: trace id or flags changed", c, p)
	}
	if c.SpanID == p.SpanID || c.SpanID == ([8]byte{}) {
		t.Errorf("child %s of %s: span id not fresh", c, p)
	}
	if _, err := Parse(c.String()); err != nil {
		t.Errorf("child %s does not parse: %v", c, err)
	}
	f, _ := Parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-future")
	if got := f.Child().String(); !strings.HasPrefix(got, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(got, "-09") {
		t.Errorf("child of a future version = %s, want version 00, same trace id and flags", got)
	}
}

func TestCheckState(t *testing.T) {
	for _, s := range []string{"", "rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", "a@vendor=x y", " a=1 ,, b=2"} {
		if err := CheckState(s); err != nil {
			t.Errorf("CheckState(%q): %v", s, err)
		}
	}
	for name, s := range map[string]string{
		"no equals":   "rojo",
		"upper key":   "Rojo=1",
		"empty value": "rojo=",
		"comma value": "a=1,b",
		"too long":    "a=" + strings.Repeat("x", 511),
		"control":     "a=\x01",
		"two ats":     "a@b@c=1",
		"members":     strings.Repeat("a=1,", 33),
	} {
		if err := CheckState(s); err == nil {
			t.Errorf("%s: CheckState(%q) accepted", name, s)
		}
	}
}

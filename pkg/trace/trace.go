package trace

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MaxStateLen is the longest tracestate W3C Trace Context allows.
const MaxStateLen = 512

// Parent is a parsed traceparent: which trace a job belongs to and which
// span it descends from.
type Parent struct {
	// Version is the traceparent's version byte, 0 for "00".
	Version byte
	// TraceID and SpanID are the trace-id and parent-id, never all
	// zeros.
	TraceID [16]byte
	SpanID  [8]byte
	// Flags are the trace-flags; bit 0 is "sampled".
	Flags byte
}

// Parse reads a traceparent header value ("00-<32 hex>-<16 hex>-<2
// hex>"). A version above 00 may carry more fields after a "-"; only the
// first four are read, as the specification asks. The error says what is
// wrong in the header's terms.
func Parse(s string) (Parent, error) {
	var p Parent
	if len(s) < 55 {
		return p, fmt.Errorf("traceparent %q: %d characters, want 55 (version-traceid-spanid-flags)", abbrev(s), len(s))
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return p, fmt.Errorf("traceparent %q: want version-traceid-spanid-flags, with 2, 32, 16 and 2 hex digits", abbrev(s))
	}
	ver, err := lowerHex(s[0:2], "version")
	if err != nil {
		return p, fmt.Errorf("traceparent %q: %w", abbrev(s), err)
	}
	switch {
	case ver[0] == 0xff:
		return p, fmt.Errorf("traceparent %q: version ff is invalid", abbrev(s))
	case ver[0] == 0 && len(s) != 55:
		return p, fmt.Errorf("traceparent %q: version 00 has exactly 55 characters, not %d", abbrev(s), len(s))
	case len(s) > 55 && s[55] != '-':
		return p, fmt.Errorf("traceparent %q: want a \"-\" after the flags", abbrev(s))
	}
	tid, err := lowerHex(s[3:35], "trace-id")
	if err != nil {
		return p, fmt.Errorf("traceparent %q: %w", abbrev(s), err)
	}
	sid, err := lowerHex(s[36:52], "parent-id")
	if err != nil {
		return p, fmt.Errorf("traceparent %q: %w", abbrev(s), err)
	}
	flags, err := lowerHex(s[53:55], "flags")
	if err != nil {
		return p, fmt.Errorf("traceparent %q: %w", abbrev(s), err)
	}
	p.Version, p.Flags = ver[0], flags[0]
	copy(p.TraceID[:], tid)
	copy(p.SpanID[:], sid)
	if p.TraceID == ([16]byte{}) {
		return Parent{}, fmt.Errorf("traceparent %q: trace-id is all zeros", abbrev(s))
	}
	if p.SpanID == ([8]byte{}) {
		return Parent{}, fmt.Errorf("traceparent %q: parent-id is all zeros", abbrev(s))
	}
	return p, nil
}

// lowerHex decodes s, which must be lowercase hex digits only.
func lowerHex(s, field string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, fmt.Errorf("%s %q is not %d lowercase hex digits", field, s, len(s))
		}
	}
	return hex.DecodeString(s)
}

// Child returns the traceparent of a span whose parent is p: the same
// trace-id and flags, a fresh random span id, version 00 (the one this
// package writes).
func (p Parent) Child() Parent {
	c := p
	c.Version = 0
	for c.SpanID == ([8]byte{}) || c.SpanID == p.SpanID {
		if _, err := rand.Read(c.SpanID[:]); err != nil {
			panic(fmt.Sprintf("read random: %v", err))
		}
	}
	return c
}

// String is the traceparent header value, version 00's form.
func (p Parent) String() string {
	return fmt.Sprintf("%02x-%s-%s-%02x", p.Version, p.TraceIDString(), p.SpanIDString(), p.Flags)
}

// TraceIDString is the trace-id as 32 lowercase hex digits, as logs carry it.
func (p Parent) TraceIDString() string { return hex.EncodeToString(p.TraceID[:]) }

// SpanIDString is the span (parent) id as 16 lowercase hex digits.
func (p Parent) SpanIDString() string { return hex.EncodeToString(p.SpanID[:]) }

// Sampled reports the trace-flags' sampled bit.
func (p Parent) Sampled() bool { return p.Flags&1 != 0 }

// CheckState checks a tracestate header value: at most MaxStateLen
// characters, at most 32 comma-separated list members, each key=value
// with a key of lowercase letters, digits and _-*/@ and a value of
// printable ASCII without "," or "=". Empty members (",,") are allowed,
// as the specification does. The error says what is wrong.
func CheckState(s string) error {
	if len(s) > MaxStateLen {
		return fmt.Errorf("tracestate: %d characters, over the %d allowed", len(s), MaxStateLen)
	}
	n := 0
	for _, m := range strings.Split(s, ",") {
		m = strings.Trim(m, " \t")
		if m == "" {
			continue
		}
		n++
		k, v, ok := strings.Cut(m, "=")
		if !ok {
			return fmt.Errorf("tracestate member %q: want key=value", abbrev(m))
		}
		if err := checkKey(k); err != nil {
			return fmt.Errorf("tracestate member %q: %w", abbrev(m), err)
		}
		if v == "" || len(v) > 256 || v[len(v)-1] == ' ' {
			return fmt.Errorf("tracestate member %q: value must be 1 to 256 characters, not ending in a space", abbrev(m))
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
				return fmt.Errorf("tracestate member %q: value has %q", abbrev(m), c)
			}
		}
	}
	if n > 32 {
		return fmt.Errorf("tracestate: %d list members, over the 32 allowed", n)
	}
	return nil
}

var errKey = errors.New(`key must be 1 to 256 of a-z 0-9 _ - * / (with one "@" for a vendor), starting with a-z or 0-9`)

func checkKey(k string) error {
	if k == "" || len(k) > 256 || strings.Count(k, "@") > 1 {
		return errKey
	}
	if c := k[0]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
		return errKey
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("_-*/@", c) >= 0) {
			return errKey
		}
	}
	if strings.HasSuffix(k, "@") {
		return errKey
	}
	return nil
}

func abbrev(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

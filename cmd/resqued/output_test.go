package main

import (
	"testing"
	"time"
)

func TestParseKeep(t *testing.T) {
	for s, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "12h": 12 * time.Hour, "30m": 30 * time.Minute, "1.5d": 36 * time.Hour, "0": 0, "off": 0, "": 0} {
		if got, err := parseKeep(s); err != nil || got != want {
			t.Errorf("parseKeep(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"7", "-1h", "d", "7 days", "0d"} {
		if _, err := parseKeep(s); err == nil {
			t.Errorf("parseKeep(%q) accepted", s)
		}
	}
}

package web

import (
	"testing"
	"time"
)

func TestHumanAge(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{900 * time.Millisecond, "0s"},
		{12 * time.Second, "12s"},
		{time.Minute, "1m"},
		{3*time.Minute + 12*time.Second, "3m 12s"},
		{2*time.Hour + 5*time.Minute + 59*time.Second, "2h 5m"},
		{time.Hour + 30*time.Second, "1h"},
		{4*24*time.Hour + 3*time.Hour + 7*time.Minute, "4d 3h"},
		{400 * 24 * time.Hour, "400d"},
	} {
		if got := humanAge(tc.d); got != tc.want {
			t.Errorf("humanAge(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

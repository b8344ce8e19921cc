package chart

import (
	"math"
	"testing"
	"time"
)

func TestNiceMax(t *testing.T) {
	for _, tc := range []struct {
		v, top, step float64
	}{
		{0, 1, 0.25},
		{-3, 1, 0.25},
		{math.NaN(), 1, 0.25},
		{math.Inf(1), 1, 0.25},
		{1, 1, 0.25},
		{1.2, 2, 0.5},
		{2, 2, 0.5},
		{2.1, 2.5, 0.5},
		{2.5, 2.5, 0.5},
		{3, 5, 1},
		{5, 5, 1},
		{5.5, 10, 2.5},
		{42, 50, 10},
		{50, 50, 10},
		{99, 100, 25},
		{1000, 1000, 250},
		{1001, 2000, 500},
		{0.25, 0.25, 0.05},
		{0.3, 0.5, 0.1},
		{0.07, 0.1, 0.025},
		{1.7e6, 2e6, 5e5},
		{123456789, 2e8, 5e7},
	} {
		top, step := niceMax(tc.v)
		if top != tc.top || step != tc.step {
			t.Errorf("niceMax(%v) = %v, %v, want %v, %v", tc.v, top, step, tc.top, tc.step)
		}
		if n := top / step; n < 4 || n > 5 {
			t.Errorf("niceMax(%v): %v intervals, want 4 or 5", tc.v, n)
		}
	}
}

func TestFormatTick(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{0.25, "0.25"},
		{0.05, "0.05"},
		{0.1 + 0.2, "0.3"},
		{1, "1"},
		{2.5, "2.5"},
		{250, "250"},
		{750, "750"},
		{1000, "1k"},
		{1500, "1.5k"},
		{12500, "12.5k"},
		{250000, "250k"},
		{2e6, "2M"},
		{1.25e6, "1.25M"},
		{5e9, "5G"},
	} {
		if got := formatTick(tc.v); got != tc.want {
			t.Errorf("formatTick(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{42, "42"},
		{1234567, "1234567"},
		{-3, "-3"},
		{1.5, "1.5"},
		{1.23456, "1.235"},
		{0.012345, "0.01235"},
		{123.456, "123.5"},
		{12345.6, "12346"},
		{0.5, "0.5"},
		{1e-12, "0"},
		{math.NaN(), "no data"},
		{math.Inf(-1), "no data"},
	} {
		if got := formatValue(tc.v); got != tc.want {
			t.Errorf("formatValue(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestRawValue(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{42, "42"},
		{0.1, "0.1"},
		{1e21, "1000000000000000000000"},
		{1.0 / 3, "0.3333333333333333"},
		{math.NaN(), "-"},
		{math.Inf(1), "-"},
	} {
		if got := rawValue(tc.v); got != tc.want {
			t.Errorf("rawValue(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestNum(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{-0.01, "0"},
		{12.34, "12.3"},
		{12.36, "12.4"},
		{720, "720"},
		{-90.05, "-90.1"},
	} {
		if got := num(tc.v); got != tc.want {
			t.Errorf("num(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	at := func(s string) time.Time {
		tt, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	for _, tc := range []struct {
		name       string
		t0, t1     string
		w          float64
		first      string
		n          int
		layout     string
		wantLabels []string
	}{
		{"Hour", "2026-03-04T14:00:00Z", "2026-03-04T14:59:00Z", 644, "14:00", 6, "15:04",
			[]string{"14:00", "14:10", "14:20", "14:30", "14:40", "14:50"}},
		{"HourOffGrid", "2026-03-04T14:03:00Z", "2026-03-04T15:02:00Z", 644, "14:10", 6, "15:04", nil},
		{"NarrowHour", "2026-03-04T14:00:00Z", "2026-03-04T14:59:00Z", 200, "14:00", 4, "15:04",
			[]string{"14:00", "14:15", "14:30", "14:45"}},
		{"FiveMinutes", "2026-03-04T14:00:00Z", "2026-03-04T14:05:00Z", 644, "14:00", 6, "15:04", nil},
		{"Seconds", "2026-03-04T14:00:00Z", "2026-03-04T14:01:00Z", 644, "14:00:00", 7, "15:04:05", nil},
		{"Day", "2026-03-04T00:00:00Z", "2026-03-04T23:00:00Z", 644, "00:00", 6, "15:04", nil},
		{"TwoDays", "2026-03-04T00:00:00Z", "2026-03-05T23:00:00Z", 644, "Wed 00:00", 4, "Mon 15:04", nil},
		{"Week", "2026-03-04T14:00:00Z", "2026-03-11T13:00:00Z", 644, "Thu 05", 7, "Mon 02",
			[]string{"Thu 05", "Fri 06", "Sat 07", "Sun 08", "Mon 09", "Tue 10", "Wed 11"}},
		{"Month", "2026-03-01T00:00:00Z", "2026-03-31T00:00:00Z", 644, "Mar 02", 5, "Jan 02", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ticks, layout := timeTicks(at(tc.t0), at(tc.t1), tc.w)
			if layout != tc.layout {
				t.Errorf("layout = %q, want %q", layout, tc.layout)
			}
			if len(ticks) != tc.n {
				t.Errorf("%d ticks %v, want %d", len(ticks), ticks, tc.n)
			}
			if len(ticks) > 0 {
				if got := ticks[0].Format(layout); got != tc.first {
					t.Errorf("first tick %q, want %q", got, tc.first)
				}
			}
			if tc.wantLabels != nil {
				var got []string
				for _, tt := range ticks {
					got = append(got, tt.Format(layout))
				}
				if len(got) != len(tc.wantLabels) {
					t.Fatalf("labels %q, want %q", got, tc.wantLabels)
				}
				for i := range got {
					if got[i] != tc.wantLabels[i] {
						t.Fatalf("labels %q, want %q", got, tc.wantLabels)
					}
				}
			}
			// Labels never overlap: centres at least a label plus a gap apart.
			span := at(tc.t1).Sub(at(tc.t0))
			for i := 1; i < len(ticks); i++ {
				gap := tc.w * float64(ticks[i].Sub(ticks[i-1])) / float64(span)
				if gap < textWidth(ticks[i].Format(layout)) {
					t.Errorf("ticks %v and %v overlap: %v units apart", ticks[i-1], ticks[i], gap)
				}
			}
		})
	}
	t.Run("OnePoint", func(t *testing.T) {
		tt := at("2026-03-04T14:05:00Z")
		ticks, layout := timeTicks(tt, tt, 644)
		if len(ticks) != 1 || ticks[0].Format(layout) != "14:05" {
			t.Errorf("ticks %v %q, want one at 14:05", ticks, layout)
		}
	})
}

func TestCleanID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"jobs", "jobs"},
		{"q-default_1", "q-default_1"},
		{"", "chart-"},
		{"1st", "chart-1st"},
		{`a b"<c>`, "a_b__c_"},
		{"é", "_"},
	} {
		if got := cleanID(tc.in); got != tc.want {
			t.Errorf("cleanID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEsc(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{`<script>alert(1)</script>&"'`, "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#34;&#39;"},
		{"a\x00b\x1bc", "a\uFFFDb\uFFFDc"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"tab\tnl\n", "tab&#x9;nl&#xA;"},
	} {
		if got := esc(tc.in); got != tc.want {
			t.Errorf("esc(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"longer than ten", 10, "longer th…"},
		{"héllo wörld", 5, "héll…"},
	} {
		if got := clip(tc.in, tc.n); got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestStateClass(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"busy", "busy"},
		{"idle", "idle"},
		{"paused", "paused"},
		{"", "none"},
		{"none", "other"},
		{"cell", "other"},
		{"Busy", "other"},
		{`busy" onmouseover="x`, "other"},
		{"a-very-long-state-name-here", "other"},
	} {
		if got := stateClass(tc.in); got != tc.want {
			t.Errorf("stateClass(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

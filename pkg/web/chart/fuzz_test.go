package chart_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/resqued/resqued/internal/svgtest"
	"github.com/resqued/resqued/pkg/web/chart"
)

// xmlText is s as it reads back from the SVG: characters XML 1.0 cannot
// carry (and bytes that are not UTF-8) come back as U+FFFD.
func xmlText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF {
			b.WriteRune(r)
		} else {
			b.WriteRune(utf8.RuneError)
		}
	}
	return b.String()
}

// FuzzSVG checks that no name, unit, title, state or value makes a chart
// or a table malformed XML, and that names read back as given.
func FuzzSVG(f *testing.F) {
	f.Add("processed", "Jobs per minute", "jobs/min", "busy", 42.0, 3.0, 0.5, int64(60))
	f.Add(`<script>alert(1)</script>&"`, "]]><!--", "'", `idle" x="`, -1.0, 1e300, 5e-324, int64(1))
	f.Add("\x00\x01\xff\ufffe\U0010FFFF", "\r\n\t", "", "", 0.0, 0.0, 0.0, int64(0))
	f.Fuzz(func(t *testing.T, name, title, unit, state string, a, b, c float64, stepSec int64) {
		step := time.Duration(stepSec%86400) * time.Second
		var ps []chart.Point
		for i, v := range []float64{a, b, c, a + b, b * c} {
			ps = append(ps, chart.Point{T: t0.Add(time.Duration(i) * step), V: v})
		}
		line := chart.Line{ID: name, Title: title, Unit: unit, Step: step, Series: []chart.Series{
			{Name: name, Points: ps}, {Name: title, Points: ps[:2]},
		}}
		bars := chart.Bars{ID: name, Title: title, Unit: unit, Bars: []chart.Bar{{Label: name, V: a, Note: state}, {Label: unit, V: b}}}
		spark := chart.Spark{ID: name, Title: title, Unit: unit, Points: ps}
		strip := chart.Strip{ID: name, Title: title, Cells: []chart.Cell{{T: t0, State: state}, {T: t0.Add(step), State: name}}}
		for what, h := range map[string]string{
			"line": string(line.SVG()), "line table": string(line.Table()),
			"bars": string(bars.SVG()), "bars table": string(bars.Table()),
			"spark": string(spark.SVG()), "strip": string(strip.SVG()),
		} {
			root, err := svgtest.ParseErr(h)
			if err != nil {
				t.Fatalf("%s: not well-formed XML: %v\n%s", what, err, h)
			}
			switch what {
			case "line":
				if got, want := root.All("g", "series")[0].Attr("data-series"), xmlText(name); got != want {
					t.Errorf("data-series %q, want %q", got, want)
				}
			case "bars":
				if got, want := root.All("g", "row")[0].Attr("data-label"), xmlText(name); got != want {
					t.Errorf("data-label %q, want %q", got, want)
				}
			case "strip":
				if got, want := root.All("rect", "cell")[0].Attr("data-state"), xmlText(state); got != want {
					t.Errorf("data-state %q, want %q", got, want)
				}
			}
		}
	})
}

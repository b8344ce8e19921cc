package chart_test

import (
	"math"
	"strings"
	"testing"

	"github.com/resqued/resqued/pkg/web/chart"
)

func TestSpark_SVG(t *testing.T) {
	c := chart.Spark{ID: "size-default", Title: "default, last hour", Unit: "jobs", Points: minutes(3, 12, math.NaN(), 0, 5)}
	root := parse(t, c.SVG())
	desc := checkAccessible(t, root, "size-default")
	if got, want := root.Child("title").Text, "default, last hour: min 0, max 12, latest 5 jobs"; got != want {
		t.Errorf("title %q, want %q", got, want)
	}
	if !strings.HasPrefix(desc, "14:00 to 14:04 UTC: min 0") {
		t.Errorf("desc %q", desc)
	}
	if !root.Has("svg", "chart", "spark") || root.Attr("width") != "120" || root.Attr("height") != "24" {
		t.Errorf("root class %q width %q height %q, want a fixed 120x24 spark", root.Attr("class"), root.Attr("width"), root.Attr("height"))
	}
	g := root.One(t, "g", "series")
	if got := g.Attr("data-values"); got != "3 12 - 0 5" {
		t.Errorf("data-values %q", got)
	}
	n := 0
	for _, l := range g.All("polyline", "line") {
		n += len(points(t, l.Attr("points")))
	}
	if n != 4 {
		t.Errorf("%d points, want 4", n)
	}
	if got := len(root.All("g", "axis")) + len(root.All("g", "legend")); got != 0 {
		t.Errorf("a spark has no axes or legend")
	}
	cols := root.All("rect", "col")
	if len(cols) != 5 {
		t.Fatalf("%d hover columns, want 5", len(cols))
	}
	for i, want := range []string{"14:00 UTC 3 jobs", "14:01 UTC 12 jobs", "14:02 UTC no data"} {
		if got := cols[i].Child("title").Text; got != want {
			t.Errorf("column %d: %q, want %q", i, got, want)
		}
	}
	t.Run("Empty", func(t *testing.T) {
		root := parse(t, chart.Spark{ID: "s"}.SVG())
		if desc := checkAccessible(t, root, "s"); desc != "no data" {
			t.Errorf("desc %q, want no data", desc)
		}
	})
}

package chart_test

import (
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/pkg/web/chart"
)

func TestStrip_SVG(t *testing.T) {
	states := []string{"busy", "busy", "idle", "paused", "", `busy" onclick="x`}
	var cells []chart.Cell
	for i, s := range states {
		cells = append(cells, chart.Cell{T: t0.Add(time.Duration(i)*10*time.Second + 10*time.Second), State: s})
	}
	c := chart.Strip{ID: "w-1", Title: "host:1 state", Cells: cells}
	if h := string(c.SVG()); strings.Contains(h, `" onclick`) {
		t.Fatalf("markup injected:\n%s", h)
	}
	root := parse(t, c.SVG())
	desc := checkAccessible(t, root, "w-1")
	if want := "14:00:10 to 14:01:00 UTC: busy 33%, idle 17%, paused 17%, busy\" onclick=\"x 17%, no record 17% of 6 records"; desc != want {
		t.Errorf("desc %q, want %q", desc, want)
	}
	rects := root.All("rect", "cell")
	if len(rects) != len(cells) {
		t.Fatalf("%d cells, want %d", len(rects), len(cells))
	}
	for i, want := range []struct{ class, title string }{
		{"busy", "14:00:10 UTC busy"},
		{"busy", "14:00:20 UTC busy"},
		{"idle", "14:00:30 UTC idle"},
		{"paused", "14:00:40 UTC paused"},
		{"none", "14:00:50 UTC no record"},
		{"other", `14:01:00 UTC busy" onclick="x`},
	} {
		r := rects[i]
		if !r.Has("rect", "cell", want.class) {
			t.Errorf("cell %d: class %q, want cell %s", i, r.Attr("class"), want.class)
		}
		if got := r.Child("title").Text; got != want.title {
			t.Errorf("cell %d: title %q, want %q", i, got, want.title)
		}
		if got := r.Attr("data-state"); got != states[i] {
			t.Errorf("cell %d: data-state %q, want %q", i, got, states[i])
		}
	}
	t.Run("Empty", func(t *testing.T) {
		root := parse(t, chart.Strip{ID: "w"}.SVG())
		if desc := checkAccessible(t, root, "w"); desc != "no data" {
			t.Errorf("desc %q, want no data", desc)
		}
		if got := len(root.All("rect", "cell")); got != 0 {
			t.Errorf("%d cells, want none", got)
		}
	})
}

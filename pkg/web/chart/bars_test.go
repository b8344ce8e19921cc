package chart_test

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resqued/resqued/pkg/web/chart"
)

func queueBars() chart.Bars {
	return chart.Bars{ID: "queues", Title: "Queue sizes", Unit: "jobs", Bars: []chart.Bar{
		{Label: "default", V: 1000},
		{Label: "mail", V: 250, Note: "paused"},
		{Label: "empty", V: 0},
	}}
}

func TestBars_SVG(t *testing.T) {
	t.Run("Rows", func(t *testing.T) {
		c := queueBars()
		root := parse(t, c.SVG())
		desc := checkAccessible(t, root, "queues")
		if want := "default 1000 jobs; mail 250 jobs (paused); empty 0 jobs"; desc != want {
			t.Errorf("desc %q, want %q", desc, want)
		}
		rows := root.All("g", "row")
		if len(rows) != 3 {
			t.Fatalf("%d rows, want 3", len(rows))
		}
		var widths []float64
		for i, b := range c.Bars {
			r := rows[i]
			if r.Attr("data-label") != b.Label || r.Attr("data-value") != strconv.FormatFloat(b.V, 'f', -1, 64) || r.Attr("data-note") != b.Note {
				t.Errorf("row %d: %v, want %+v", i, r.Attrs, b)
			}
			bar := r.One(t, "rect", "bar")
			if got := bar.Has("rect", "noted"); got != (b.Note != "") {
				t.Errorf("row %d: noted %v", i, got)
			}
			w, _ := strconv.ParseFloat(bar.Attr("width"), 64)
			widths = append(widths, w)
		}
		if widths[2] != 0 || math.Abs(widths[1]-widths[0]/4) > 0.1 {
			t.Errorf("bar widths %v, want proportional to 1000, 250, 0", widths)
		}
		if got := rows[1].Child("title").Text; got != "mail: 250 jobs (paused)" {
			t.Errorf("hover %q", got)
		}
		if got, want := root.One(t, "g", "axis", "x").Texts("text", "tick"), []string{"0", "250", "500", "750", "1k"}; !slices.Equal(got, want) {
			t.Errorf("ticks %q, want %q", got, want)
		}
		if got := root.Texts("text", "unit"); !slices.Equal(got, []string{"jobs"}) {
			t.Errorf("unit %q", got)
		}
	})

	t.Run("Escaped", func(t *testing.T) {
		hostile := "<img src=x onerror=alert(1)>&\"\x00"
		c := chart.Bars{ID: "q", Title: hostile, Unit: hostile, Bars: []chart.Bar{{Label: hostile, V: 3, Note: hostile}}}
		h := string(c.SVG())
		if strings.Contains(h, "<img") {
			t.Fatalf("markup injected:\n%s", h)
		}
		root := parse(t, c.SVG())
		if got, want := root.One(t, "g", "row").Attr("data-label"), strings.ReplaceAll(hostile, "\x00", "\uFFFD"); got != want {
			t.Errorf("data-label %q, want %q", got, want)
		}
		table := string(c.Table())
		if strings.Contains(table, "<img") {
			t.Fatalf("markup injected into the table:\n%s", table)
		}
		parse(t, c.Table())
	})

	t.Run("Empty", func(t *testing.T) {
		root := parse(t, chart.Bars{ID: "q"}.SVG())
		if desc := checkAccessible(t, root, "q"); desc != "no data" {
			t.Errorf("desc %q, want no data", desc)
		}
		if got := root.Texts("text", "nodata"); len(got) != 1 {
			t.Errorf("no 'no data' text")
		}
		parse(t, chart.Bars{Bars: []chart.Bar{{Label: "x", V: math.NaN()}}}.SVG())
	})
}

func TestBars_Table(t *testing.T) {
	root := parse(t, queueBars().Table())
	if got := root.Child("thead").Child("tr").Texts("th"); !slices.Equal(got, []string{"Name", "Value (jobs)", "Note"}) {
		t.Errorf("header %q", got)
	}
	var got [][]string
	for _, tr := range root.Child("tbody").All("tr") {
		var row []string
		for _, c := range tr.Nodes {
			row = append(row, c.Text)
		}
		got = append(got, row)
	}
	want := [][]string{{"default", "1000", ""}, {"mail", "250", "paused"}, {"empty", "0", ""}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("rows %q, want %q", got, want)
	}
	// Without notes there is no note column.
	if got := parse(t, chart.Bars{Bars: []chart.Bar{{Label: "a", V: 1}}}.Table()).Child("thead").Child("tr").Texts("th"); len(got) != 2 {
		t.Errorf("header %q, want two columns", got)
	}
}

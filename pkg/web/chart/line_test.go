package chart_test

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/svgtest"
	"github.com/resqued/resqued/pkg/web/chart"
)

var t0 = time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC)

// minutes returns one point a minute from t0 per value.
func minutes(vs ...float64) []chart.Point {
	ps := make([]chart.Point, len(vs))
	for i, v := range vs {
		ps[i] = chart.Point{T: t0.Add(time.Duration(i) * time.Minute), V: v}
	}
	return ps
}

// points reads a polyline's points attribute.
func points(tb testing.TB, s string) [][2]float64 {
	tb.Helper()
	var out [][2]float64
	for _, xy := range strings.Fields(s) {
		x, y, ok := strings.Cut(xy, ",")
		fx, errx := strconv.ParseFloat(x, 64)
		fy, erry := strconv.ParseFloat(y, 64)
		if !ok || errx != nil || erry != nil {
			tb.Fatalf("bad point %q in %q", xy, s)
		}
		out = append(out, [2]float64{fx, fy})
	}
	return out
}

// values reads a data-values attribute back into floats, NaN for "-".
func values(tb testing.TB, s string) []float64 {
	tb.Helper()
	return svgtest.Values(tb, s)
}

func sameValues(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) })
}

func jobsChart() chart.Line {
	nan := math.NaN()
	return chart.Line{
		ID:    "jobs",
		Title: "Jobs per minute, last hour",
		Unit:  "jobs/min",
		Step:  time.Minute,
		Series: []chart.Series{
			{Name: "processed", Points: minutes(10, 42, 50, nan, nan, 7, 0.5, 1.0/3)},
			{Name: "failed", Points: minutes(0, 3, 1, nan, 2, nan, 0, 0)},
		},
	}
}

func TestLine_SVG(t *testing.T) {
	t.Run("Accessible", func(t *testing.T) {
		root := parse(t, jobsChart().SVG())
		desc := checkAccessible(t, root, "jobs")
		if got := root.ByID("jobs-title").Text; got != "Jobs per minute, last hour" {
			t.Errorf("title %q", got)
		}
		for _, want := range []string{"14:00 to 14:07 UTC", "processed: 0.3333 to 50 jobs/min, latest 0.3333", "failed: 0 to 3 jobs/min"} {
			if !strings.Contains(desc, want) {
				t.Errorf("desc %q lacks %q", desc, want)
			}
		}
		if got := root.Attr("width"); got != "100%" {
			t.Errorf("width %q, want 100%%", got)
		}
		if got := root.Attr("viewBox"); got != "0 0 720 220" {
			t.Errorf("viewBox %q, want the 720x220 default", got)
		}
	})

	t.Run("DataValues", func(t *testing.T) {
		c := jobsChart()
		root := parse(t, c.SVG())
		series := root.All("g", "series")
		if len(series) != len(c.Series) {
			t.Fatalf("%d series groups, want %d", len(series), len(c.Series))
		}
		for i, s := range c.Series {
			g := series[i]
			if got := g.Attr("data-series"); got != s.Name {
				t.Errorf("series %d: data-series %q, want %q", i, got, s.Name)
			}
			if !g.Has("g", "s"+strconv.Itoa(i)) {
				t.Errorf("series %d: class %q lacks s%d", i, g.Attr("class"), i)
			}
			var want []float64
			for _, p := range s.Points {
				want = append(want, p.V)
			}
			if got := values(t, g.Attr("data-values")); !sameValues(got, want) {
				t.Errorf("series %s: data-values %v, want %v", s.Name, got, want)
			}
		}
		if got := series[0].Attr("data-values"); got != "10 42 50 - - 7 0.5 0.3333333333333333" {
			t.Errorf("data-values %q: NaN is not '-' or a value is not exact", got)
		}
	})

	t.Run("Polylines", func(t *testing.T) {
		root := parse(t, jobsChart().SVG())
		processed := root.All("g", "series")[0]
		lines := processed.All("polyline", "line")
		if len(lines) != 2 {
			t.Fatalf("%d polylines, want 2: the NaNs break the line", len(lines))
		}
		if a, b := lines[0].Attr("data-first"), lines[1].Attr("data-first"); a != "0" || b != "5" {
			t.Errorf("data-first %s and %s, want 0 and 5", a, b)
		}
		n := 0
		var xs []float64
		for _, l := range lines {
			for _, p := range points(t, l.Attr("points")) {
				n++
				xs = append(xs, p[0])
			}
		}
		if n != 6 {
			t.Errorf("%d points, want one per non-NaN value (6)", n)
		}
		if !slices.IsSorted(xs) {
			t.Errorf("x not increasing: %v", xs)
		}
		// failed has a lone point between two NaNs: a run of one, with a dot.
		failed := root.All("g", "series")[1]
		if got := len(failed.All("polyline", "line")); got != 3 {
			t.Errorf("failed: %d polylines, want 3", got)
		}
		if got := len(failed.All("circle", "dot")); got != 1 {
			t.Errorf("failed: %d dots, want 1 for the lone point", got)
		}
	})

	t.Run("MaxAtTop", func(t *testing.T) {
		root := parse(t, jobsChart().SVG())
		top := math.Inf(1)
		bottom := 0.0
		for _, l := range append(root.All("line", "grid"), root.All("line", "axis-line")...) {
			y, _ := strconv.ParseFloat(l.Attr("y1"), 64)
			top, bottom = min(top, y), max(bottom, y)
		}
		line := root.All("g", "series")[0].All("polyline", "line")[0]
		ps := points(t, line.Attr("points"))
		if got := ps[2][1]; got != top {
			t.Errorf("y of the maximum 50 = %v, want the plot's top %v", got, top)
		}
		if got, want := ps[1][1], bottom-(bottom-top)*42/50; math.Abs(got-want) > 0.1 {
			t.Errorf("y of 42 = %v, want %v", got, want)
		}
	})

	t.Run("Axes", func(t *testing.T) {
		root := parse(t, jobsChart().SVG())
		y := root.One(t, "g", "axis", "y")
		if got, want := y.Texts("text", "tick"), []string{"0", "10", "20", "30", "40", "50"}; !slices.Equal(got, want) {
			t.Errorf("y ticks %q, want %q", got, want)
		}
		if got := y.Texts("text", "unit"); !slices.Equal(got, []string{"jobs/min"}) {
			t.Errorf("unit label %q, want jobs/min", got)
		}
		if got := len(root.All("line", "grid")); got < 4 || got > 5 {
			t.Errorf("%d gridlines, want 4-5", got)
		}
		x := root.One(t, "g", "axis", "x")
		if got := x.Texts("text", "axis-title"); len(got) != 1 || !strings.Contains(got[0], "UTC") {
			t.Errorf("x axis title %q, want one saying UTC", got)
		}
		if got, want := x.Texts("text", "tick"), []string{"14:00", "14:02", "14:04", "14:06"}; !slices.Equal(got, want) {
			t.Errorf("x ticks %q, want %q", got, want)
		}
	})

	t.Run("HourInOtherZone", func(t *testing.T) {
		zone := time.FixedZone("UTC+5", 5*3600)
		var ps []chart.Point
		for i := range 60 {
			ps = append(ps, chart.Point{T: t0.Add(time.Duration(i) * time.Minute).In(zone), V: float64(i * 16)})
		}
		root := parse(t, chart.Line{ID: "h", Unit: "jobs", Series: []chart.Series{{Name: "n", Points: ps}}}.SVG())
		x := root.One(t, "g", "axis", "x")
		if got, want := x.Texts("text", "tick"), []string{"14:00", "14:10", "14:20", "14:30", "14:40", "14:50"}; !slices.Equal(got, want) {
			t.Errorf("x ticks %q, want %q in UTC", got, want)
		}
		if got, want := root.One(t, "g", "axis", "y").Texts("text", "tick"), []string{"0", "250", "500", "750", "1k"}; !slices.Equal(got, want) {
			t.Errorf("y ticks %q, want %q", got, want)
		}
	})

	t.Run("Week", func(t *testing.T) {
		var ps []chart.Point
		for i := range 7 * 24 {
			ps = append(ps, chart.Point{T: t0.Add(time.Duration(i) * time.Hour), V: 1500})
		}
		root := parse(t, chart.Line{ID: "w", Step: time.Hour, Series: []chart.Series{{Name: "n", Points: ps}}}.SVG())
		ticks := root.One(t, "g", "axis", "x").Texts("text", "tick")
		if len(ticks) < 5 || len(ticks) > 7 || ticks[0] != "Thu 05" {
			t.Errorf("x ticks %q, want 5-7 starting Thu 05", ticks)
		}
		if got := root.One(t, "g", "axis", "y").Texts("text", "tick"); got[len(got)-1] != "2k" {
			t.Errorf("y ticks %q, want up to 2k", got)
		}
		hover := root.All("rect", "col")[30].Child("title").Text
		if want := "Thu 05 20:00 UTC — n 1500"; hover != want {
			t.Errorf("hover %q, want %q", hover, want)
		}
	})

	t.Run("Seconds", func(t *testing.T) {
		c := chart.Line{ID: "s", Unit: "s", Step: 10 * time.Second, Series: []chart.Series{{Name: "p95", Points: []chart.Point{
			{T: t0, V: 0.2}, {T: t0.Add(10 * time.Second), V: 2.4}, {T: t0.Add(20 * time.Second), V: 1},
		}}}}
		root := parse(t, c.SVG())
		if got, want := root.One(t, "g", "axis", "y").Texts("text", "tick"), []string{"0", "0.5", "1", "1.5", "2", "2.5"}; !slices.Equal(got, want) {
			t.Errorf("y ticks %q, want %q", got, want)
		}
		if got := root.All("rect", "col")[1].Child("title").Text; got != "14:00:10 UTC — p95 2.4 s" {
			t.Errorf("hover %q", got)
		}
	})

	t.Run("Legend", func(t *testing.T) {
		root := parse(t, jobsChart().SVG())
		legend := root.One(t, "g", "legend")
		if got := legend.Texts("text"); !slices.Equal(got, []string{"processed", "failed"}) {
			t.Errorf("legend %q", got)
		}
		if got := len(legend.All("rect", "swatch")); got != 2 {
			t.Errorf("%d swatches, want 2", got)
		}
		one := jobsChart()
		one.Series = one.Series[:1]
		if got := len(parse(t, one.SVG()).All("g", "legend")); got != 0 {
			t.Errorf("%d legends for one series, want none", got)
		}
	})

	t.Run("Escaped", func(t *testing.T) {
		hostile := `<script>alert(1)</script>&"`
		c := jobsChart()
		c.ID = `x" onload="alert(1)`
		c.Title = hostile
		c.Unit = hostile
		c.Series[0].Name = hostile
		h := string(c.SVG())
		if strings.Contains(h, "<script") || strings.Contains(h, `" onload`) {
			t.Fatalf("markup injected:\n%s", h)
		}
		root := parse(t, c.SVG())
		if got := root.All("g", "series")[0].Attr("data-series"); got != hostile {
			t.Errorf("data-series %q, want %q back", got, hostile)
		}
		if got := root.One(t, "g", "legend").Texts("text")[0]; got != hostile {
			t.Errorf("legend %q, want %q back", got, hostile)
		}
		if got := root.Child("title").Text; got != hostile {
			t.Errorf("title %q, want %q back", got, hostile)
		}
		if got := root.All("rect", "col")[0].Child("title").Text; !strings.Contains(got, hostile+" 10 "+hostile) {
			t.Errorf("hover %q lacks the name", got)
		}
		checkAccessible(t, root, "x__onload__alert_1_")
	})

	t.Run("Hover", func(t *testing.T) {
		root := parse(t, jobsChart().SVG())
		cols := root.One(t, "g", "hover").All("rect", "col")
		if len(cols) != 8 {
			t.Fatalf("%d hover columns, want one per time (8)", len(cols))
		}
		for i, want := range map[int]string{
			1: "14:01 UTC — processed 42 jobs/min, failed 3 jobs/min",
			3: "14:03 UTC — processed no data, failed no data",
			4: "14:04 UTC — processed no data, failed 2 jobs/min",
			7: "14:07 UTC — processed 0.3333 jobs/min, failed 0 jobs/min",
		} {
			if got := cols[i].Child("title").Text; got != want {
				t.Errorf("column %d: %q, want %q", i, got, want)
			}
		}
		if got := cols[5].Attr("data-t"); got != "2026-03-04T14:05:00Z" {
			t.Errorf("data-t %q", got)
		}
		// The columns tile the plot: each starts where the last ended.
		end := -1.0
		for i, c := range cols {
			x, _ := strconv.ParseFloat(c.Attr("x"), 64)
			w, _ := strconv.ParseFloat(c.Attr("width"), 64)
			if end >= 0 && math.Abs(x-end) > 0.11 {
				t.Errorf("column %d starts at %v, previous ended at %v", i, x, end)
			}
			end = x + w
		}
	})

	t.Run("GapInTime", func(t *testing.T) {
		ps := minutes(1, 2, 3, 4)
		ps[2].T, ps[3].T = ps[2].T.Add(5*time.Minute), ps[3].T.Add(5*time.Minute)
		c := chart.Line{ID: "g", Step: time.Minute, Series: []chart.Series{{Name: "n", Points: ps}}}
		if got := len(parse(t, c.SVG()).All("polyline", "line")); got != 2 {
			t.Errorf("%d polylines, want 2: the missing minutes break the line", got)
		}
		c.Step = 0 // the smallest spacing, a minute, is the step
		if got := len(parse(t, c.SVG()).All("polyline", "line")); got != 2 {
			t.Errorf("with Step 0: %d polylines, want 2", got)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		for name, c := range map[string]chart.Line{
			"NoSeries":  {ID: "e"},
			"NoPoints":  {ID: "e", Unit: "jobs", Series: []chart.Series{{Name: "a"}, {Name: "b"}}},
			"AllNaN":    {ID: "e", Series: []chart.Series{{Name: "a", Points: minutes(math.NaN(), math.NaN())}}},
			"OnePoint":  {ID: "e", Series: []chart.Series{{Name: "a", Points: minutes(0)}}},
			"AllZero":   {ID: "e", Series: []chart.Series{{Name: "a", Points: minutes(0, 0, 0)}}},
			"Negative":  {ID: "e", Series: []chart.Series{{Name: "a", Points: minutes(-5, -1)}}},
			"Infinite":  {ID: "e", Series: []chart.Series{{Name: "a", Points: minutes(math.Inf(1), 3)}}},
			"TinyBoxed": {ID: "e", Width: 10, Height: 10, Series: []chart.Series{{Name: "a", Points: minutes(1, 2)}}},
		} {
			t.Run(name, func(t *testing.T) {
				root := parse(t, c.SVG())
				desc := checkAccessible(t, root, "e")
				ticks := root.One(t, "g", "axis", "y").Texts("text", "tick")
				if len(ticks) < 5 || ticks[0] != "0" {
					t.Errorf("y ticks %q, want an axis from 0", ticks)
				}
				noData := name == "NoSeries" || name == "NoPoints" || name == "AllNaN"
				if noData {
					if !strings.Contains(desc, "no data") {
						t.Errorf("desc %q, want it to say no data", desc)
					}
					if got := root.Texts("text", "nodata"); len(got) != 1 {
						t.Errorf("no 'no data' text in the plot")
					}
					if ticks[len(ticks)-1] != "1" {
						t.Errorf("y ticks %q, want 0 to 1", ticks)
					}
				}
			})
		}
	})
}

func TestLine_Table(t *testing.T) {
	c := jobsChart()
	c.Series[1].Name = `<b>"failed"</b>`
	root := parse(t, c.Table())
	if !root.Has("table", "chart-data") {
		t.Fatalf("root <%s class=%q>, want table.chart-data", root.XMLName.Local, root.Attr("class"))
	}
	if got := root.Child("caption").Text; got != c.Title {
		t.Errorf("caption %q", got)
	}
	head := root.Child("thead").Child("tr").Texts("th")
	if want := []string{"Time (UTC)", "processed (jobs/min)", `<b>"failed"</b> (jobs/min)`}; !slices.Equal(head, want) {
		t.Errorf("header %q, want %q", head, want)
	}
	rows := root.Child("tbody").All("tr")
	if len(rows) != 8 {
		t.Fatalf("%d rows, want 8", len(rows))
	}
	cells := func(tr *node) []string {
		var out []string
		for _, c := range tr.Nodes {
			if c.XMLName.Local == "th" {
				out = append(out, c.Child("time").Text, c.Child("time").Attr("datetime"))
				continue
			}
			out = append(out, c.Text)
		}
		return out
	}
	for i, want := range map[int][]string{
		1: {"2026-03-04 14:01", "2026-03-04T14:01:00Z", "42", "3"},
		3: {"2026-03-04 14:03", "2026-03-04T14:03:00Z", "no data", "no data"},
		7: {"2026-03-04 14:07", "2026-03-04T14:07:00Z", "0.3333", "0"},
	} {
		if got := cells(rows[i]); !slices.Equal(got, want) {
			t.Errorf("row %d: %q, want %q", i, got, want)
		}
	}
	t.Run("Empty", func(t *testing.T) {
		root := parse(t, chart.Line{}.Table())
		if got := root.Child("tbody").All("td", "none"); len(got) != 1 || got[0].Text != "no data" {
			t.Errorf("empty table: %v", got)
		}
	})
}

package web_test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/historytest"
	"github.com/resqued/resqued/internal/svgtest"
	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/web"
)

// seedNow is the seeded run's now (historytest.Now).
var seedNow = historytest.Now

// startSeeded serves the dashboard at seedNow over the seeded history
// (internal/historytest), with the usual workers.
func startSeeded(t *testing.T) (*env, historytest.Expect) {
	t.Helper()
	var x historytest.Expect
	e := startWith(t, func(c *web.Config) {
		c.Now = func() time.Time { return seedNow }
		x = historytest.Seed(t, c.Queue, seedNow, []string{busyWorker, idleWorker, pausedWkr})
	})
	return e, x
}

// svgOf finds the chart with id in a page and parses it: it must be
// well-formed XML.
func svgOf(t *testing.T, page, id string) *svgtest.Node {
	t.Helper()
	i := strings.Index(page, `aria-labelledby="`+id+`-title`)
	if i < 0 {
		t.Fatalf("no chart %q on the page", id)
	}
	start := strings.LastIndex(page[:i], "<svg")
	end := strings.Index(page[i:], "</svg>")
	return svgtest.Parse(t, page[start:i+end+len("</svg>")])
}

// seriesValues returns a line or spark's series name -> values.
func seriesValues(t *testing.T, svg *svgtest.Node) map[string][]float64 {
	t.Helper()
	out := map[string][]float64{}
	for _, g := range svg.All("g", "series") {
		out[g.Attr("data-series")] = svgtest.Values(t, g.Attr("data-values"))
	}
	return out
}

// texts returns every text element's content.
func texts(svg *svgtest.Node) string {
	return strings.Join(svg.Texts("text"), "\n") + "\n"
}

// TestCharts_Overview compares the overview's throughput chart with the
// seeded minutes, and checks its axes, legend and queue bars.
func TestCharts_Overview(t *testing.T) {
	t.Parallel()
	e, x := startSeeded(t)
	page := mustGet(t, e, "/", `href="/?window=day"`, `href="/?window=week"`, "<summary>Numbers</summary>")
	svg := svgOf(t, page, "throughput")
	got := seriesValues(t, svg)
	if len(got) != 2 {
		t.Fatalf("throughput has series %v, want processed and failed", got)
	}
	for i, c := range x.All {
		if got["processed"][i] != float64(c.Processed) || got["failed"][i] != float64(c.Failed) {
			t.Errorf("minute %s: drawn %v processed %v failed, seeded %+v", x.Minutes[i].Format("15:04"), got["processed"][i], got["failed"][i], c)
		}
	}
	labels := texts(svg)
	for _, want := range []string{"jobs/min", "UTC", "processed", "failed", x.Minutes[59].Add(-50 * time.Minute).Format("15:04")[:3]} {
		if !strings.Contains(labels, want) {
			t.Errorf("throughput chart: no %q among its labels:\n%s", want, labels)
		}
	}
	if n := len(svg.All("g", "legend")); n == 0 {
		t.Error("throughput chart has no legend")
	}
	// The numbers in a table too, for screen readers.
	if !strings.Contains(page, `class="chart-data"`) {
		t.Error("no table of the chart's numbers")
	}
	bars := svgOf(t, page, "queue-sizes")
	sizes := map[string]string{}
	for _, g := range bars.All("g", "row") {
		sizes[g.Attr("data-label")] = g.Attr("data-value")
	}
	if sizes["high"] != "2" || sizes["low"] != "1" || sizes["empty"] != "0" {
		t.Errorf("queue bars %v, want high 2, low 1, empty 0", sizes)
	}

	// The week: each whole hour's jobs per minute; together the seeded
	// jobs but those of the hour under way, not drawn.
	week := svgOf(t, mustGet(t, e, "/?window=week"), "throughput")
	var sum float64
	for _, v := range seriesValues(t, week)["processed"] {
		sum += v * 60
	}
	want := float64(x.Jobs)
	for i, c := range x.All {
		if !x.Minutes[i].Before(seedNow.Truncate(time.Hour)) {
			want -= float64(c.Processed)
		}
	}
	if math.Abs(sum-want) > 0.01 {
		t.Errorf("week chart holds %v jobs, want %v", sum, want)
	}
}

// TestCharts_Queues checks each queue's size and latency sparklines
// against the seeded samples.
func TestCharts_Queues(t *testing.T) {
	t.Parallel()
	e, x := startSeeded(t)
	page := mustGet(t, e, "/queues", "<caption>Jobs waiting per queue, last hour", "<caption>Age of each queue&#39;s oldest job")
	// Queues sorted: critical, default, empty, high, low.
	for i, q := range []string{historytest.QueueCritical, historytest.QueueDefault} {
		size := seriesValues(t, svgOf(t, page, "q"+strconv.Itoa(i)+"-size"))
		lat := seriesValues(t, svgOf(t, page, "q"+strconv.Itoa(i)+"-latency"))
		var sv, lv []float64
		for _, v := range size {
			sv = v
		}
		for _, v := range lat {
			lv = v
		}
		if len(sv) != 60 || len(lv) != 60 {
			t.Fatalf("%s: %d size and %d latency points, want 60", q, len(sv), len(lv))
		}
		for m := range 60 {
			if sv[m] != float64(x.Size[q][m]) || math.Abs(lv[m]-x.Latency[q][m]) > 0.001 {
				t.Errorf("%s minute %d: drawn size %v latency %v, seeded %d %v", q, m, sv[m], lv[m], x.Size[q][m], x.Latency[q][m])
			}
		}
	}
	// A queue never sampled has no data, not zeros.
	for _, v := range seriesValues(t, svgOf(t, page, "q3-size")) {
		for _, p := range v {
			if !math.IsNaN(p) {
				t.Fatalf("queue high, never sampled, drawn with a value: %v", v)
			}
		}
	}
}

// TestCharts_Classes checks the Classes page: each class's jobs, its
// sparkline, and Report (slower and failing) standing out, first.
func TestCharts_Classes(t *testing.T) {
	t.Parallel()
	e, x := startSeeded(t)
	page := mustGet(t, e, "/classes", "Report", "Mailer", "Resize", `class="standout"`, "p95", "failure rate",
		"<caption>Jobs ended per minute per class, last hour")
	rows := strings.Split(page, "<tr")
	var first string
	for _, r := range rows {
		if strings.Contains(r, "<td>") {
			first = r
			break
		}
	}
	if !strings.Contains(first, "standout") || !strings.Contains(first, "<td>Report</td>") {
		t.Errorf("the first row is not Report standing out:\n%s", first)
	}
	if n := strings.Count(page, `class="standout"`); n != 1 {
		t.Errorf("%d rows stand out, want 1 (Report)", n)
	}
	// Sorted by name, the sparklines are c0.. in the classes' order.
	byName := mustGet(t, e, "/classes?sort=class&dir=asc")
	for i, class := range []string{historytest.ClassMailer, historytest.ClassReport, historytest.ClassResize} {
		if !strings.Contains(byName, "<td>"+class+"</td>") {
			t.Fatalf("no row for %s", class)
		}
		var vs []float64
		for _, v := range seriesValues(t, svgOf(t, byName, "c"+strconv.Itoa(i))) {
			vs = v
		}
		for m, c := range x.Class[class] {
			if vs[m] != float64(c.Processed) {
				t.Errorf("%s minute %d: drawn %v jobs, seeded %d", class, m, vs[m], c.Processed)
			}
		}
	}
	if strings.Index(byName, "<td>Mailer</td>") > strings.Index(byName, "<td>Resize</td>") {
		t.Error("sort=class&dir=asc did not sort by name")
	}
}

// TestCharts_Workers checks the workers' strips: the busy one busy in
// every recorded cell, the flapping one alternating, the paused one
// paused first.
func TestCharts_Workers(t *testing.T) {
	t.Parallel()
	e, x := startSeeded(t)
	page := mustGet(t, e, "/workers", "Last 10 minutes")
	// The strips in words, for screen readers: the busy worker busy
	// from the strip's start to now's slot's end, then no record.
	start := seedNow.Truncate(time.Minute).Add(-9 * time.Minute)
	slotEnd := seedNow.Truncate(10 * time.Second).Add(10 * time.Second)
	if want := "busy " + start.Format("15:04:05") + "–" + slotEnd.Format("15:04:05") + ", no record"; !strings.Contains(page, want) {
		t.Errorf("no %q in the Workers page", want)
	}
	// Workers sorted by id: busy (vm:4242), idle (4243), paused (4244).
	for i, id := range []string{busyWorker, idleWorker, pausedWkr} {
		svg := svgOf(t, page, "w"+strconv.Itoa(i))
		cells := svg.All("rect", "cell")
		want := x.Strips[id]
		if len(cells) != len(want) {
			t.Fatalf("%s: %d cells, want %d", id, len(cells), len(want))
		}
		for c, cell := range cells {
			if got := cell.Attr("data-state"); got != want[c] {
				t.Errorf("%s cell %d: %q, want %q", id, c, got, want[c])
			}
		}
	}
}

// TestCharts_ClassesCapped: with more classes than MaxClassRows the
// page lists the first MaxClassRows (a sparkline each) and links to all.
func TestCharts_ClassesCapped(t *testing.T) {
	t.Parallel()
	e := startWith(t, func(c *web.Config) {
		c.Now = func() time.Time { return seedNow }
		rec := history.NewRecorder(history.Config{Queue: c.Queue})
		for i := range web.MaxClassRows + 10 {
			for range i + 1 { // Class59 the busiest
				rec.JobAt(seedNow.Add(-2*time.Minute), "q", "Class"+strconv.Itoa(i), false, time.Millisecond)
			}
		}
		if err := rec.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	n := web.MaxClassRows + 10
	page := mustGet(t, e, "/classes", "Showing 50 of 60 classes", `href="/classes?all=1"`)
	if got := strings.Count(page, "<td>Class"); got != web.MaxClassRows {
		t.Errorf("%d rows, want %d", got, web.MaxClassRows)
	}
	if !strings.Contains(page, "<td>Class59</td>") || strings.Contains(page, "<td>Class0</td>") {
		t.Error("the capped page does not list the busiest classes first")
	}
	all := mustGet(t, e, "/classes?all=1")
	if got := strings.Count(all, "<td>Class"); got != n {
		t.Errorf("?all=1: %d rows, want %d", got, n)
	}
}

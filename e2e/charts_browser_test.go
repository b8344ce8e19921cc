package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/resqued/resqued/internal/historytest"
	"github.com/resqued/resqued/pkg/queue"
)

// chartInfo is what the browser sees of one chart.
type chartInfo struct {
	Kind   string              `json:"kind"` // line, bars, spark, strip
	Title  string              `json:"title"`
	Series map[string][]string `json:"series"` // name -> data-values
	Ticks  []string            `json:"ticks"`
	Axes   []string            `json:"axes"`
	Legend int                 `json:"legend"`
	Bars   int                 `json:"bars"`
	Cells  map[string]int      `json:"cells"` // state -> count
	First  string              `json:"first"` // the first point's time (RFC 3339)
}

// chartsJS collects every chart on the page, as laid out in the browser.
const chartsJS = `JSON.stringify([...document.querySelectorAll('svg.chart')].map(svg => {
  const kind = ['line','bars','spark','strip'].find(k => svg.classList.contains(k)) || '';
  const series = {};
  svg.querySelectorAll('g.series').forEach(g => { series[g.dataset.series] = (g.dataset.values || '').split(' ').filter(Boolean) });
  const cells = {};
  svg.querySelectorAll('rect.cell').forEach(r => { const s = r.dataset.state || 'none'; cells[s] = (cells[s] || 0) + 1 });
  return {kind, title: (svg.querySelector('title') || {}).textContent || '', series,
    ticks: [...svg.querySelectorAll('text.tick')].map(t => t.textContent),
    axes: [...svg.querySelectorAll('text.axis-title')].map(t => t.textContent),
    legend: svg.querySelectorAll('g.legend').length, bars: svg.querySelectorAll('rect.bar').length, cells,
    first: (svg.querySelector('rect.col') || {dataset: {}}).dataset.t || ''};
}))`

func charts(t *testing.T, ctx context.Context, url string) []chartInfo {
	t.Helper()
	var raw string
	if err := chromedp.Run(ctx, chromedp.Navigate(url), chromedp.WaitVisible("svg.chart", chromedp.ByQuery),
		chromedp.Evaluate(chartsJS, &raw)); err != nil {
		t.Fatalf("browser: %s: %v", url, err)
	}
	var cs []chartInfo
	if err := json.Unmarshal([]byte(raw), &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// checkCharts opens every page with charts, checks that each has its
// series and axis labels as the seeded run says, that the overview's
// chart refreshes without a reload, and photographs each page (the
// README's pictures), the overview in the week and in dark mode too.
func checkCharts(t *testing.T, ctx context.Context, base string, q *queue.Client, seed historytest.Expect,
	run func(...chromedp.Action), shot func(string) chromedp.Action) {
	t.Helper()
	// The seeded minutes in the hour the chart draws from first on (a
	// minute may have turned since the seed).
	inWindow := func(first string) (total int64) {
		t0, err := time.Parse(time.RFC3339, first)
		if err != nil {
			t.Fatalf("overview: the chart's first point has time %q: %v", first, err)
		}
		for i, c := range seed.All {
			if m := seed.Minutes[i]; !m.Before(t0) && m.Before(t0.Add(time.Hour)) {
				total += c.Processed
			}
		}
		return total
	}
	for _, window := range []string{"", "?window=day", "?window=week"} {
		cs := charts(t, ctx, base+"/"+window)
		var line, bars *chartInfo
		for i := range cs {
			switch cs[i].Kind {
			case "line":
				line = &cs[i]
			case "bars":
				bars = &cs[i]
			}
		}
		if line == nil || bars == nil {
			t.Fatalf("overview%s: charts %+v, want the throughput line and the queue bars", window, cs)
		}
		if len(line.Series["processed"]) == 0 || len(line.Series["failed"]) == 0 || line.Legend == 0 {
			t.Errorf("overview%s: throughput series %v, legend %d", window, line.Series, line.Legend)
		}
		if axes := strings.Join(line.Axes, " "); !strings.Contains(axes, "jobs/min") || !strings.Contains(axes, "UTC") {
			t.Errorf("overview%s: axis titles %q, want jobs/min and UTC", window, line.Axes)
		}
		if len(line.Ticks) < 4 {
			t.Errorf("overview%s: ticks %q", window, line.Ticks)
		}
		if bars.Bars < 3 {
			t.Errorf("overview%s: %d queue bars", window, bars.Bars)
		}
		if window == "" {
			var drawn float64
			for _, v := range line.Series["processed"] {
				var f float64
				fmt.Sscan(v, &f)
				drawn += f
			}
			if want := inWindow(line.First); drawn != float64(want) {
				t.Errorf("overview: the last hour's chart holds %v jobs from %s, the seeded run %d", drawn, line.First, want)
			}
		}
	}
	// (The overview itself was photographed by TestBrowser_Dashboard.)
	run(chromedp.Navigate(base+"/?window=week"), chromedp.WaitVisible("svg.chart", chromedp.ByQuery), shot("overview-week"))

	// Queues: a size and a latency sparkline per queue, the seeded ones
	// with 60 minutes.
	qs := charts(t, ctx, base+"/queues")
	sparks := 0
	for _, c := range qs {
		if c.Kind == "spark" {
			sparks++
			for _, vs := range c.Series {
				if len(vs) != 60 {
					t.Errorf("queues: sparkline %q has %d points, want 60", c.Title, len(vs))
				}
			}
		}
	}
	if sparks < 4 {
		t.Errorf("queues: %d sparklines, want two per queue", sparks)
	}
	run(shot("queues"))

	// Classes: three rows, Report standing out with its reason.
	cls := charts(t, ctx, base+"/classes")
	if len(cls) != 3 {
		t.Errorf("classes: %d sparklines, want 3", len(cls))
	}
	var standout string
	run(chromedp.Text("tr.standout", &standout, chromedp.ByQuery), shot("classes"))
	if !strings.Contains(standout, "Report") || !strings.Contains(standout, "p95") {
		t.Errorf("classes: the standout row is %q, want Report with its p95", standout)
	}

	// Workers: a strip of 60 cells each; the busy one busy.
	ws := charts(t, ctx, base+"/workers")
	strips := 0
	for _, c := range ws {
		if c.Kind != "strip" {
			continue
		}
		strips++
		n := 0
		for _, k := range c.Cells {
			n += k
		}
		if n != 60 {
			t.Errorf("workers: strip %q has %d cells, want 60", c.Title, n)
		}
		if strings.Contains(c.Title, busyWorker) && c.Cells["busy"] == 0 {
			t.Errorf("workers: %s's strip has no busy cell: %v", busyWorker, c.Cells)
		}
	}
	if strips != 3 {
		t.Errorf("workers: %d strips, want 3", strips)
	}
	run(shot("workers"))

	// Live: the overview's chart takes new counts without a reload.
	var before, after string
	run(chromedp.Navigate(base+"/"), chromedp.WaitVisible("svg.chart.line", chromedp.ByQuery),
		chromedp.Evaluate(`window.__noReload = true; document.querySelector('svg.chart.line g.series').dataset.values`, &before))
	historytest.More(t, q, 25)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var still bool
		run(chromedp.Evaluate(`document.querySelector('svg.chart.line g.series').dataset.values`, &after),
			chromedp.Evaluate(`window.__noReload === true`, &still))
		if !still {
			t.Fatal("the overview reloaded instead of refreshing its chart")
		}
		if after != before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overview's chart did not refresh within 30 s: %s", after)
		}
		time.Sleep(100 * time.Millisecond) // polling the page, not waiting blindly
	}

	// JavaScript off: every page's charts are there, drawn by the server
	// (live.js does not run; a reload brings new numbers).
	run(emulation.SetScriptExecutionDisabled(true))
	for _, page := range []string{"/", "/queues", "/classes", "/workers"} {
		var nodes []*cdp.Node
		run(chromedp.Navigate(base+page), chromedp.WaitVisible("h1", chromedp.ByQuery),
			chromedp.Nodes("svg.chart", &nodes, chromedp.ByQueryAll, chromedp.AtLeast(0)))
		if len(nodes) == 0 {
			t.Errorf("%s with JavaScript off: no chart", page)
		}
	}
	run(emulation.SetScriptExecutionDisabled(false))

	// Dark mode: the same page with prefers-color-scheme: dark.
	run(emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}),
		chromedp.Navigate(base+"/"), chromedp.WaitVisible("svg.chart", chromedp.ByQuery), shot("overview-dark"),
		emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}))
}

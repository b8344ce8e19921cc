package web

// The dashboard's pictures: what each page draws from the history
// (pkg/history) and the live state, through pkg/web/chart.

import (
	"context"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/metrics"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/web/chart"
)

// figure is a chart and its numbers as a table, for a template.
type figure struct {
	SVG, Table template.HTML
}

func points(ps []history.Point) []chart.Point {
	out := make([]chart.Point, len(ps))
	for i, p := range ps {
		out[i] = chart.Point{T: p.T, V: p.V}
	}
	return out
}

// windowTitles names the throughput chart per window.
var windowTitles = map[history.Window]string{
	history.LastHour: "Jobs per minute, last hour",
	history.LastDay:  "Jobs per minute, last day (average over 15 minutes)",
	history.LastWeek: "Jobs per minute, last week (average over each hour)",
}

// windowLink is one choice of the overview's window toggle.
type windowLink struct {
	Label, Href string
	On          bool
}

// throughputFigure draws the overview's processed and failed per minute
// over w, and the window toggle's links.
func (s *server) throughputFigure(ctx context.Context, r *http.Request, w history.Window) (figure, []windowLink, error) {
	tp, err := s.hist.Throughput(ctx, w)
	if err != nil {
		return figure{}, nil, err
	}
	c := chart.Line{ID: "throughput", Title: windowTitles[tp.Window], Unit: "jobs/min", Step: tp.Step,
		Series: []chart.Series{{Name: "processed", Points: points(tp.Processed)}, {Name: "failed", Points: points(tp.Failed)}}}
	var links []windowLink
	for _, o := range []struct {
		w     history.Window
		label string
	}{{history.LastHour, "Hour"}, {history.LastDay, "Day"}, {history.LastWeek, "Week"}} {
		q := url.Values{}
		if o.w != history.LastHour {
			q.Set("window", string(o.w))
		}
		href := r.URL.Path
		if len(q) > 0 {
			href += "?" + q.Encode()
		}
		links = append(links, windowLink{Label: o.label, Href: href, On: o.w == tp.Window})
	}
	return figure{SVG: c.SVG(), Table: c.Table()}, links, nil
}

// queueBars draws the queues' sizes now.
func queueBars(rows []queueRow) figure {
	c := chart.Bars{ID: "queue-sizes", Title: "Jobs waiting per queue, now", Unit: "jobs"}
	for _, q := range rows {
		b := chart.Bar{Label: q.Queue, V: float64(q.Size)}
		if q.Paused {
			b.Note = "paused"
		}
		c.Bars = append(c.Bars, b)
	}
	return figure{SVG: c.SVG(), Table: c.Table()}
}

// queueSparks is a queue's last hour for the Queues page.
type queueSparks struct {
	Size, Latency template.HTML
}

// queueNumbers are the Queues page's sparklines as tables: the text
// alternative for screen readers, under "Numbers".
type queueNumbers struct {
	Size, Latency template.HTML
}

// queueHistory draws each queue's size and latency over the last hour,
// and puts the same numbers in two tables.
func (s *server) queueHistory(ctx context.Context, rows []queueRow) (map[string]queueSparks, queueNumbers, error) {
	names := make([]string, len(rows))
	for i, q := range rows {
		names[i] = q.Queue
	}
	hs, err := s.hist.Queues(ctx, names...)
	if err != nil {
		return nil, queueNumbers{}, err
	}
	out := map[string]queueSparks{}
	size := chart.Line{ID: "queue-size-numbers", Title: "Jobs waiting per queue, last hour (a sample a minute)", Unit: "jobs", Step: time.Minute}
	lat := chart.Line{ID: "queue-latency-numbers", Title: "Age of each queue's oldest job, last hour (a sample a minute)", Unit: "s", Step: time.Minute}
	for i, q := range rows {
		h := hs[q.Queue]
		size.Series = append(size.Series, chart.Series{Name: q.Queue, Points: points(h.Size)})
		lat.Series = append(lat.Series, chart.Series{Name: q.Queue, Points: points(h.Latency)})
		id := "q" + strconv.Itoa(i)
		out[q.Queue] = queueSparks{
			Size:    chart.Spark{ID: id + "-size", Title: "Jobs waiting in " + q.Queue + ", last hour", Unit: "jobs", Points: points(h.Size)}.SVG(),
			Latency: chart.Spark{ID: id + "-latency", Title: "Age of the oldest job in " + q.Queue + ", last hour", Unit: "s", Points: points(h.Latency)}.SVG(),
		}
	}
	return out, queueNumbers{Size: size.Table(), Latency: lat.Table()}, nil
}

// classRow is one class as the Classes page shows it.
type classRow struct {
	history.ClassStats
	Spark                  template.HTML
	Rate                   string // mean jobs per minute over the hour
	FailRateText, BaseFail string
	P50Text, P95Text       string
	BaseP95, MeanText      string
	Why                    string
}

// classSorts are the Classes page's sort keys, each with its order.
var classSorts = map[string]func(a, b *classRow) bool{
	"class": func(a, b *classRow) bool { return a.Class < b.Class },
	"jobs":  func(a, b *classRow) bool { return a.Processed < b.Processed },
	"fail":  func(a, b *classRow) bool { return a.FailRate < b.FailRate },
	"p50":   func(a, b *classRow) bool { return lessNaN(a.P50, b.P50) },
	"p95":   func(a, b *classRow) bool { return lessNaN(a.P95, b.P95) },
	"mean":  func(a, b *classRow) bool { return lessNaN(a.Mean, b.Mean) },
}

// lessNaN orders NaN (no jobs) first.
func lessNaN(a, b float64) bool {
	if math.IsNaN(a) {
		return !math.IsNaN(b)
	}
	return !math.IsNaN(b) && a < b
}

// sortLink is a column header's link on the Classes page.
type sortLink struct {
	Key, Label, Href, Arrow, Title string
	Num                            bool
}

// classesView is the Classes page's data.
type classesView struct {
	Rows    []classRow
	Sorts   []sortLink
	Jumped  int
	MinJobs int
	// Numbers is the sparklines' numbers as a table.
	Numbers template.HTML
	// Total is how many classes there are; Rows holds MaxClassRows of
	// them unless All, and AllHref shows them all.
	Total   int
	All     bool
	AllHref string
}

// MaxClassRows is how many classes the Classes page lists unless asked
// for all (?all=1): those that stand out first, then the busiest, or
// the first of the order asked for. With 1,000 classes the whole page
// is about 11 MB of HTML, redrawn every 2 s.
const MaxClassRows = 50

// classCacheTTL is how long the Classes page's figures are reused: they
// change with a worker's flush (every 5 s) at most, and with 1,000
// classes reading them costs Redis about 80 ms.
const classCacheTTL = 10 * time.Second

// classStats reads the classes' figures, or reuses those read within
// classCacheTTL.
func (s *server) classStats(ctx context.Context) ([]history.ClassStats, error) {
	now := s.now()
	s.classMu.Lock()
	defer s.classMu.Unlock()
	if s.classAt.IsZero() || now.Sub(s.classAt) >= classCacheTTL || now.Before(s.classAt) {
		stats, err := s.hist.Classes(ctx)
		if err != nil {
			return nil, err
		}
		s.classStatsCache, s.classAt = stats, now
	}
	return s.classStatsCache, nil
}

func (s *server) classes(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	stats, err := s.classStats(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	v := classesView{MinJobs: history.MinJobs, Total: len(stats), All: r.URL.Query().Get("all") == "1"}
	for _, c := range stats {
		row := classRow{ClassStats: c,
			Rate:         strconv.FormatFloat(float64(c.Processed)/60, 'f', 1, 64),
			FailRateText: percentText(c.FailRate, c.Processed), BaseFail: percentText(c.Base.FailRate, c.Base.Processed),
			P50Text: secondsText(c.P50), P95Text: secondsText(c.P95), BaseP95: secondsText(c.Base.P95), MeanText: secondsText(c.Mean),
			Why: strings.Join(c.Why, "; ")}
		if c.Jumped {
			v.Jumped++
		}
		v.Rows = append(v.Rows, row)
	}
	key, desc := r.URL.Query().Get("sort"), r.URL.Query().Get("dir") != "asc"
	less, ok := classSorts[key]
	if !ok {
		// Default: what stands out first, then the busiest.
		key, desc = "", true
		less = func(a, b *classRow) bool {
			if a.Jumped != b.Jumped {
				return !a.Jumped
			}
			return a.Processed < b.Processed
		}
	}
	sort.SliceStable(v.Rows, func(i, j int) bool {
		if desc {
			return less(&v.Rows[j], &v.Rows[i])
		}
		return less(&v.Rows[i], &v.Rows[j])
	})
	if !v.All && len(v.Rows) > MaxClassRows {
		v.Rows = v.Rows[:MaxClassRows]
		q := r.URL.Query()
		q.Del("fragment")
		q.Set("all", "1")
		v.AllHref = "/classes?" + q.Encode()
	}
	// Sparklines, and their numbers, for the rows shown only.
	numbers := chart.Line{ID: "class-numbers", Title: "Jobs ended per minute per class, last hour", Unit: "jobs/min", Step: time.Minute}
	for i := range v.Rows {
		c := &v.Rows[i]
		c.Spark = chart.Spark{ID: "c" + strconv.Itoa(i), Title: "Jobs of " + c.Class + " per minute, last hour", Unit: "jobs/min", Points: points(c.PerMinute)}.SVG()
		numbers.Series = append(numbers.Series, chart.Series{Name: c.Class, Points: points(c.PerMinute)})
	}
	if len(v.Rows) > 0 {
		v.Numbers = numbers.Table()
	}
	for _, c := range []sortLink{
		{Key: "class", Label: "Class"},
		{Key: "jobs", Label: "Jobs, last hour", Num: true},
		{Key: "fail", Label: "Failure rate", Num: true, Title: "failed runs (retried ones too) over all runs; in brackets, the 24 hours before"},
		{Key: "p50", Label: "p50", Num: true, Title: "median duration, estimated from resqued_job_duration_seconds's buckets"},
		{Key: "p95", Label: "p95", Num: true, Title: "95th percentile duration; in brackets, the 24 hours before"},
		{Key: "mean", Label: "Mean", Num: true},
	} {
		dir := "desc"
		if c.Key == "class" {
			dir = "asc"
		}
		if c.Key == key {
			if desc {
				c.Arrow, dir = " ↓", "asc"
			} else {
				c.Arrow, dir = " ↑", "desc"
			}
		}
		q := url.Values{"sort": {c.Key}, "dir": {dir}}
		if v.All {
			q.Set("all", "1")
		}
		c.Href = "/classes?" + q.Encode()
		v.Sorts = append(v.Sorts, c)
	}
	s.render(w, r, "classes", &page{Title: "Classes", Nav: "classes", Live: true, Data: v})
}

func secondsText(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.IsInf(v, 1):
		return "over " + humanAge(time.Duration(metrics.DurationBuckets()[len(metrics.DurationBuckets())-1]*float64(time.Second)))
	case v < 1:
		return strconv.FormatFloat(v*1000, 'f', 0, 64) + " ms"
	case v < 60:
		return strconv.FormatFloat(v, 'f', 2, 64) + " s"
	}
	return humanAge(time.Duration(v * float64(time.Second)))
}

func percentText(v float64, n int64) string {
	if n == 0 {
		return "—"
	}
	return strconv.FormatFloat(v*100, 'f', 1, 64) + "%"
}

// workerStrip is a worker's last 10 minutes: the strip, and the same in
// words ("idle 14:05:00–14:07:30, busy 14:07:30–14:15:00 UTC") for
// screen readers.
type workerStrip struct {
	SVG   template.HTML
	Words string
}

// workerStrips draws each worker's last 10 minutes.
func (s *server) workerStrips(ctx context.Context, ws []queue.WorkerInfo) (map[string]workerStrip, error) {
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
	}
	cells, err := s.hist.Workers(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := map[string]workerStrip{}
	for i, w := range ws {
		var cs []chart.Cell
		for _, c := range cells[w.ID] {
			cs = append(cs, chart.Cell{T: c.T, State: c.State})
		}
		out[w.ID] = workerStrip{
			SVG:   chart.Strip{ID: "w" + strconv.Itoa(i), Title: "What " + w.ID + " did, last 10 minutes", Cells: cs, Width: 240, Height: 18}.SVG(),
			Words: stripWords(cells[w.ID]),
		}
	}
	return out, nil
}

// stripWords writes a strip's runs of one state, "idle 14:05:00–14:07:30,
// busy 14:07:30–14:15:00 UTC"; "no record" for a run without one.
func stripWords(cells []history.Cell) string {
	var runs []string
	for i := 0; i < len(cells); {
		j := i
		for j < len(cells) && cells[j].State == cells[i].State {
			j++
		}
		state := cells[i].State
		if state == "" {
			state = "no record"
		}
		end := cells[j-1].T.Add(10 * time.Second)
		runs = append(runs, state+" "+cells[i].T.UTC().Format("15:04:05")+"–"+end.UTC().Format("15:04:05"))
		i = j
	}
	if len(runs) == 0 {
		return "no record"
	}
	return strings.Join(runs, ", ") + " UTC"
}

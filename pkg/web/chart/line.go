package chart

import (
	"html/template"
	"sort"
	"strings"
	"time"
)

// Point is one sample of a series. A V that is NaN (or infinite) means
// "no data": the line breaks there.
type Point struct {
	T time.Time
	V float64
}

// Series is one named line. Points are in time order; all series of one
// chart normally share the same times.
type Series struct {
	Name   string
	Points []Point
}

// Line is a time-series line chart: y from 0 to a nice maximum, time in
// UTC on x, a legend when there is more than one series, and a hover
// column per time listing every series' value.
type Line struct {
	// ID prefixes the ids of the chart's elements; it must be unique on
	// the page. Characters other than letters, digits, '-' and '_' become
	// '_'; empty means "chart".
	ID string
	// Title names the chart ("Jobs per minute, last hour"); it is the
	// SVG's <title> and the table's caption.
	Title string
	// Unit is the y-axis unit ("jobs/min", "s", "jobs"), written on the
	// axis and after every value.
	Unit   string
	Series []Series
	// Width and Height are the viewBox size. Zero means 720 by 220; the
	// SVG is drawn 100% wide and keeps that aspect ratio.
	Width, Height int
	// Step is the spacing of points. Two consecutive points further apart
	// than 1.5 Step also break the line, and points less than a minute
	// apart are labelled with seconds. Zero means the smallest spacing in
	// the data.
	Step time.Duration
}

// The sizes of a line chart's parts, in viewBox units.
const (
	lineLeft   = 56.0 // room for the unit label and the y tick labels
	lineRight  = 20.0
	lineBottom = 40.0 // x tick labels and the axis title
	legendRow  = 16.0
	nameRunes  = 32 // series names in the legend are clipped to this
	hoverRunes = 64 // and in hover titles to this
)

// SVG renders the chart as an inline <svg> element.
func (c Line) SVG() template.HTML {
	vw, vh := float64(dim(c.Width, 720)), float64(dim(c.Height, 220))
	vw = max(vw, lineLeft+lineRight+40)
	id := cleanID(c.ID)
	cols := columns(c.Series)
	step := pointStep(c.Step, cols)
	hi, n := 0.0, 0
	for _, s := range c.Series {
		for _, p := range s.Points {
			if finite(p.V) {
				hi, n = max(hi, p.V), n+1
			}
		}
	}
	top, tick := niceMax(hi)

	// The legend sits above the plot, wrapping into rows.
	type item struct {
		name, full string
		x, y       float64
	}
	var items []item
	topM := 14.0
	if len(c.Series) > 1 {
		x, y := lineLeft, 14.0
		for _, s := range c.Series {
			name := clip(s.Name, nameRunes)
			w := 16 + textWidth(name) + 16
			if x > lineLeft && x+w > vw-lineRight {
				x, y = lineLeft, y+legendRow
			}
			items = append(items, item{name, s.Name, x, y})
			x += w
		}
		topM = y + 12
	}
	vh = max(vh, topM+lineBottom+40)
	px, py, pw, ph := lineLeft, topM, vw-lineLeft-lineRight, vh-topM-lineBottom

	var t0, t1 time.Time
	if len(cols) > 0 {
		t0, t1 = cols[0], cols[len(cols)-1]
	}
	span := t1.Sub(t0)
	xOf := func(t time.Time) float64 {
		if span <= 0 {
			return px + pw/2
		}
		return px + pw*float64(t.Sub(t0))/float64(span)
	}
	yOf := func(v float64) float64 {
		return py + ph*(1-min(max(v, 0), top)/top)
	}

	var w svgWriter
	w.open(id, "line", vw, vh, `width="100%"`, c.Title, c.desc(cols, step, n))

	// Gridlines and y ticks; the line at 0 is the x axis.
	w.WriteString(`<g class="axis y">`)
	for i := 0; ; i++ {
		v := roundSig(float64(i)*tick, 12)
		if v > top*(1+1e-9) {
			break
		}
		y := yOf(v)
		class := "grid"
		if i == 0 {
			class = "axis-line"
		}
		w.printf(`<line class="%s" x1="%s" y1="%s" x2="%s" y2="%s"/>`, class, num(px), num(y), num(px+pw), num(y))
		w.printf(`<text class="tick" x="%s" y="%s" text-anchor="end">%s</text>`, num(px-6), num(y+4), formatTick(v))
	}
	if c.Unit != "" {
		w.printf(`<text class="axis-title unit" transform="rotate(-90)" x="%s" y="12" text-anchor="middle">%s</text>`,
			num(-(py + ph/2)), esc(c.Unit))
	}
	w.WriteString(`</g><g class="axis x">`)
	if len(cols) > 0 {
		ticks, layout := timeTicks(t0, t1, pw)
		for _, t := range ticks {
			x := xOf(t)
			label := t.UTC().Format(layout)
			anchor, half := "middle", textWidth(label)/2
			if x-half < 0 {
				anchor = "start"
			} else if x+half > vw {
				anchor = "end"
			}
			w.printf(`<line class="tick" x1="%s" y1="%s" x2="%s" y2="%s"/>`, num(x), num(py+ph), num(x), num(py+ph+4))
			w.printf(`<text class="tick" x="%s" y="%s" text-anchor="%s" data-t="%s">%s</text>`,
				num(x), num(py+ph+16), anchor, t.UTC().Format(time.RFC3339), label)
		}
	}
	w.printf(`<text class="axis-title" x="%s" y="%s" text-anchor="middle">Time (UTC)</text></g>`, num(px+pw/2), num(vh-6))
	if n == 0 {
		w.printf(`<text class="nodata" x="%s" y="%s" text-anchor="middle">no data</text>`, num(px+pw/2), num(py+ph/2))
	}

	if len(items) > 0 {
		w.WriteString(`<g class="legend">`)
		for i, it := range items {
			w.printf(`<g class="item s%d">`, i%6)
			if it.name != it.full {
				w.printf(`<title>%s</title>`, esc(it.full))
			}
			w.printf(`<rect class="swatch" x="%s" y="%s" width="12" height="10" rx="2" fill="currentColor"/>`, num(it.x), num(it.y-9))
			w.printf(`<text x="%s" y="%s">%s</text></g>`, num(it.x+16), num(it.y), esc(it.name))
		}
		w.WriteString(`</g>`)
	}

	for i, s := range c.Series {
		w.series(i, s.Name, s.Points, step, xOf, yOf, "2.5")
	}

	// One invisible column per time, as wide as the gaps to its
	// neighbours, whose <title> lists every series' value.
	if len(cols) > 0 {
		values := valueIndex(c.Series)
		layout := pointLayout(span, step)
		w.WriteString(`<g class="hover">`)
		for i, t := range cols {
			x := xOf(t)
			l, r := px, px+pw
			if i > 0 {
				l = (xOf(cols[i-1]) + x) / 2
			}
			if i < len(cols)-1 {
				r = (x + xOf(cols[i+1])) / 2
			}
			w.printf(`<rect class="col" x="%s" y="%s" width="%s" height="%s" fill="transparent" data-t="%s"><title>%s</title></rect>`,
				num(l), num(py), num(r-l), num(ph), t.UTC().Format(time.RFC3339),
				esc(t.UTC().Format(layout)+" UTC — "+c.valuesAt(values, t)))
		}
		w.WriteString(`</g>`)
	}
	w.close()
	return template.HTML(w.String())
}

// desc summarises the chart for a screen reader: the time range, then
// each series' range and latest value, or "no data".
func (c Line) desc(cols []time.Time, step time.Duration, n int) string {
	var b strings.Builder
	if len(cols) > 0 {
		t0, t1 := cols[0], cols[len(cols)-1]
		layout := pointLayout(t1.Sub(t0), step)
		b.WriteString(t0.UTC().Format(layout) + " to " + t1.UTC().Format(layout) + " UTC: ")
	}
	if n == 0 {
		b.WriteString("no data")
		return b.String()
	}
	for i, s := range c.Series {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s.Name + ": ")
		lo, hi, latest, seen := valueRange(s.Points)
		if seen == 0 {
			b.WriteString("no data")
			continue
		}
		b.WriteString(formatValue(lo) + " to " + c.withUnit(hi) + ", latest " + formatValue(latest))
	}
	return b.String()
}

// withUnit writes v and the chart's unit.
func (c Line) withUnit(v float64) string {
	if c.Unit == "" || !finite(v) {
		return formatValue(v)
	}
	return formatValue(v) + " " + c.Unit
}

// valuesAt lists every series' value at t: "processed 42 jobs/min, failed 3 jobs/min".
func (c Line) valuesAt(values []map[int64]float64, t time.Time) string {
	parts := make([]string, len(c.Series))
	for i, s := range c.Series {
		v, ok := values[i][t.UnixNano()]
		if !ok {
			parts[i] = clip(s.Name, hoverRunes) + " no data"
			continue
		}
		parts[i] = clip(s.Name, hoverRunes) + " " + c.withUnit(v)
	}
	return strings.Join(parts, ", ")
}

// Table renders the chart's numbers as an HTML <table class="chart-data">:
// a row per time (UTC), a column per series, for a
// <details><summary>Numbers</summary>…</details> below the chart.
func (c Line) Table() template.HTML {
	cols := columns(c.Series)
	step := pointStep(c.Step, cols)
	layout := "2006-01-02 15:04"
	if step > 0 && step < time.Minute {
		layout += ":05"
	}
	var b strings.Builder
	b.WriteString(`<table class="chart-data">`)
	if c.Title != "" {
		b.WriteString(`<caption>` + esc(c.Title) + `</caption>`)
	}
	b.WriteString(`<thead><tr><th scope="col">Time (UTC)</th>`)
	for _, s := range c.Series {
		head := s.Name
		if c.Unit != "" {
			head += " (" + c.Unit + ")"
		}
		b.WriteString(`<th scope="col" class="num">` + esc(head) + `</th>`)
	}
	b.WriteString(`</tr></thead><tbody>`)
	values := valueIndex(c.Series)
	for _, t := range cols {
		b.WriteString(`<tr><th scope="row"><time datetime="` + t.UTC().Format(time.RFC3339) + `">` +
			t.UTC().Format(layout) + `</time></th>`)
		for i := range c.Series {
			v, ok := values[i][t.UnixNano()]
			if !ok || !finite(v) {
				b.WriteString(`<td class="num none">no data</td>`)
				continue
			}
			b.WriteString(`<td class="num">` + formatValue(v) + `</td>`)
		}
		b.WriteString(`</tr>`)
	}
	if len(cols) == 0 {
		b.WriteString(`<tr><td colspan="` + itoa(len(c.Series)+1) + `" class="none">no data</td></tr>`)
	}
	b.WriteString(`</tbody></table>`)
	return template.HTML(b.String())
}

// columns returns every distinct time of the series' points, in order.
func columns(series []Series) []time.Time {
	seen := map[int64]bool{}
	var cols []time.Time
	for _, s := range series {
		for _, p := range s.Points {
			if k := p.T.UnixNano(); !seen[k] {
				seen[k] = true
				cols = append(cols, p.T)
			}
		}
	}
	sort.Slice(cols, func(i, j int) bool { return cols[i].Before(cols[j]) })
	return cols
}

// valueIndex maps each series' times (UnixNano) to its values.
func valueIndex(series []Series) []map[int64]float64 {
	idx := make([]map[int64]float64, len(series))
	for i, s := range series {
		idx[i] = make(map[int64]float64, len(s.Points))
		for _, p := range s.Points {
			idx[i][p.T.UnixNano()] = p.V
		}
	}
	return idx
}

// pointStep is step, or when zero the smallest gap between the times.
func pointStep(step time.Duration, cols []time.Time) time.Duration {
	if step > 0 {
		return step
	}
	for i := 1; i < len(cols); i++ {
		if d := cols[i].Sub(cols[i-1]); d > 0 && (step == 0 || d < step) {
			step = d
		}
	}
	return step
}

// dim is v, or def when v is not positive.
func dim(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

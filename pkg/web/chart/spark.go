package chart

import (
	"html/template"
	"time"
)

// Spark is a sparkline for a table cell: one small line from 0 to its
// maximum, no axes, a <title> giving min, max and latest, and a hover
// column per point.
type Spark struct {
	// ID, Title and Unit mean what they mean for Line.
	ID, Title, Unit string
	Points          []Point
	// Width and Height are the drawn size in CSS pixels and the viewBox
	// size; zero means 120 by 24. Unlike the other charts a spark has a
	// fixed size, so that it sits in a table cell.
	Width, Height int
}

// SVG renders the sparkline as an inline <svg> element.
func (c Spark) SVG() template.HTML {
	vw, vh := float64(dim(c.Width, 120)), float64(dim(c.Height, 24))
	const pad = 2.0
	id := cleanID(c.ID)
	series := []Series{{Name: c.Title, Points: c.Points}}
	cols := columns(series)
	step := pointStep(0, cols)
	unit := Line{Unit: c.Unit}

	lo, hi, latest, n := valueRange(c.Points)
	summary := "no data"
	if n > 0 {
		summary = "min " + formatValue(lo) + ", max " + formatValue(hi) + ", latest " + unit.withUnit(latest)
	}
	title := summary
	if c.Title != "" {
		title = c.Title + ": " + summary
	}
	desc := summary
	var t0, t1 time.Time
	if len(cols) > 0 {
		t0, t1 = cols[0], cols[len(cols)-1]
		layout := pointLayout(t1.Sub(t0), step)
		desc = t0.UTC().Format(layout) + " to " + t1.UTC().Format(layout) + " UTC: " + summary
	}
	span := t1.Sub(t0)
	top := max(hi, 0)
	if top == 0 {
		top = 1
	}
	px, py, pw, ph := pad, pad, vw-2*pad, vh-2*pad
	xOf := func(t time.Time) float64 {
		if span <= 0 {
			return px + pw/2
		}
		return px + pw*float64(t.Sub(t0))/float64(span)
	}
	yOf := func(v float64) float64 { return py + ph*(1-min(max(v, 0), top)/top) }

	var w svgWriter
	w.open(id, "spark", vw, vh, `width="`+num(vw)+`" height="`+num(vh)+`"`, title, desc)
	w.printf(`<line class="axis-line" x1="%s" y1="%s" x2="%s" y2="%s"/>`, num(px), num(py+ph), num(px+pw), num(py+ph))
	w.series(0, c.Title, c.Points, step, xOf, yOf, "1.5")
	if len(cols) > 0 {
		values := valueIndex(series)[0]
		layout := pointLayout(span, step)
		w.WriteString(`<g class="hover">`)
		for i, t := range cols {
			x := xOf(t)
			l, r := 0.0, vw
			if i > 0 {
				l = (xOf(cols[i-1]) + x) / 2
			}
			if i < len(cols)-1 {
				r = (x + xOf(cols[i+1])) / 2
			}
			w.printf(`<rect class="col" x="%s" y="0" width="%s" height="%s" fill="transparent" data-t="%s"><title>%s</title></rect>`,
				num(l), num(r-l), num(vh), t.UTC().Format(time.RFC3339),
				esc(t.UTC().Format(layout)+" UTC "+unit.withUnit(values[t.UnixNano()])))
		}
		w.WriteString(`</g>`)
	}
	w.close()
	return template.HTML(w.String())
}

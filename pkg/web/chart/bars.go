package chart

import (
	"html/template"
	"strings"
)

// Bar is one horizontal bar: a label (a queue name), its value and an
// optional note written after the value ("paused").
type Bar struct {
	Label string
	V     float64
	Note  string
}

// Bars is a horizontal bar chart, one bar per label in the given order,
// on a value axis from 0 to a nice maximum.
type Bars struct {
	// ID, Title and Unit mean what they mean for Line.
	ID, Title, Unit string
	Bars            []Bar
	// Width is the viewBox width; zero means 720. The height follows
	// from the number of bars.
	Width int
}

// The sizes of a bar chart's parts, in viewBox units.
const (
	barsRow    = 22.0
	barsTop    = 8.0
	barsBottom = 36.0 // value ticks and the unit
	barsValue  = 130.0
)

// SVG renders the chart as an inline <svg> element.
func (c Bars) SVG() template.HTML {
	vw := max(float64(dim(c.Width, 720)), 240)
	id := cleanID(c.ID)
	hi := 0.0
	labelW := 60.0
	for _, b := range c.Bars {
		if finite(b.V) {
			hi = max(hi, b.V)
		}
		labelW = max(labelW, textWidth(clip(b.Label, 40))+8)
	}
	labelW = min(labelW, 0.35*vw)
	labelRunes := int((labelW - 8) / 6.2)
	top, tick := niceMax(hi)
	rows := max(len(c.Bars), 1)
	vh := barsTop + float64(rows)*barsRow + barsBottom
	px, pw := labelW+4, vw-labelW-4-barsValue
	py, ph := barsTop, float64(rows)*barsRow
	xOf := func(v float64) float64 { return px + pw*min(max(v, 0), top)/top }

	var w svgWriter
	w.open(id, "bars", vw, vh, `width="100%"`, c.Title, c.desc())
	w.WriteString(`<g class="axis x">`)
	for i := 0; ; i++ {
		v := roundSig(float64(i)*tick, 12)
		if v > top*(1+1e-9) {
			break
		}
		x := xOf(v)
		class := "grid"
		if i == 0 {
			class = "axis-line"
		}
		w.printf(`<line class="%s" x1="%s" y1="%s" x2="%s" y2="%s"/>`, class, num(x), num(py), num(x), num(py+ph))
		w.printf(`<text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>`, num(x), num(py+ph+14), formatTick(v))
	}
	if c.Unit != "" {
		w.printf(`<text class="axis-title unit" x="%s" y="%s" text-anchor="middle">%s</text>`, num(px+pw/2), num(vh-6), esc(c.Unit))
	}
	w.WriteString(`</g>`)
	if len(c.Bars) == 0 {
		w.printf(`<text class="nodata" x="%s" y="%s" text-anchor="middle">no data</text>`, num(px+pw/2), num(py+barsRow/2+4))
	}
	for i, b := range c.Bars {
		y := py + float64(i)*barsRow
		class := "bar"
		if b.Note != "" {
			class += " noted"
		}
		value := c.withUnit(b.V)
		if b.Note != "" {
			value += " (" + b.Note + ")"
		}
		w.printf(`<g class="row" data-label="%s" data-value="%s" data-note="%s"><title>%s</title>`,
			esc(b.Label), rawValue(b.V), esc(b.Note), esc(b.Label+": "+value))
		w.printf(`<rect class="hit" x="0" y="%s" width="%s" height="%s" fill="transparent"/>`, num(y), num(vw), num(barsRow))
		w.printf(`<text class="label" x="4" y="%s">%s</text>`, num(y+15), esc(clip(b.Label, labelRunes)))
		end := px
		if finite(b.V) {
			end = xOf(b.V)
		}
		w.printf(`<rect class="%s" x="%s" y="%s" width="%s" height="14" fill="currentColor"/>`, class, num(px), num(y+4), num(end-px))
		w.printf(`<text class="value" x="%s" y="%s">%s</text></g>`, num(end+6), num(y+15), esc(clip(value, 24)))
	}
	w.close()
	return template.HTML(w.String())
}

// desc lists every bar for a screen reader: "default 12 jobs; mail 3 jobs (paused)".
func (c Bars) desc() string {
	if len(c.Bars) == 0 {
		return "no data"
	}
	parts := make([]string, len(c.Bars))
	for i, b := range c.Bars {
		parts[i] = b.Label + " " + c.withUnit(b.V)
		if b.Note != "" {
			parts[i] += " (" + b.Note + ")"
		}
	}
	return strings.Join(parts, "; ")
}

// withUnit writes v and the chart's unit.
func (c Bars) withUnit(v float64) string {
	return Line{Unit: c.Unit}.withUnit(v)
}

// Table renders the bars as an HTML <table class="chart-data">: label,
// value and, when any bar has one, note.
func (c Bars) Table() template.HTML {
	notes := false
	for _, b := range c.Bars {
		notes = notes || b.Note != ""
	}
	var s strings.Builder
	s.WriteString(`<table class="chart-data">`)
	if c.Title != "" {
		s.WriteString(`<caption>` + esc(c.Title) + `</caption>`)
	}
	head := "Value"
	if c.Unit != "" {
		head += " (" + c.Unit + ")"
	}
	s.WriteString(`<thead><tr><th scope="col">Name</th><th scope="col" class="num">` + esc(head) + `</th>`)
	if notes {
		s.WriteString(`<th scope="col">Note</th>`)
	}
	s.WriteString(`</tr></thead><tbody>`)
	for _, b := range c.Bars {
		s.WriteString(`<tr><th scope="row">` + esc(b.Label) + `</th>`)
		if finite(b.V) {
			s.WriteString(`<td class="num">` + formatValue(b.V) + `</td>`)
		} else {
			s.WriteString(`<td class="num none">no data</td>`)
		}
		if notes {
			s.WriteString(`<td>` + esc(b.Note) + `</td>`)
		}
		s.WriteString(`</tr>`)
	}
	if len(c.Bars) == 0 {
		s.WriteString(`<tr><td colspan="2" class="none">no data</td></tr>`)
	}
	s.WriteString(`</tbody></table>`)
	return template.HTML(s.String())
}

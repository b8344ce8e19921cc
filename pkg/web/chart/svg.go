package chart

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// esc escapes s for XML (and so for HTML) text and attribute values: the
// five markup characters, tab and newlines as character references, and
// any character XML 1.0 forbids (NUL, most control characters, invalid
// UTF-8) as U+FFFD, so hostile names can neither inject markup nor make
// the document malformed.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder never fails
	return b.String()
}

// cleanID keeps the letters, digits, '-' and '_' of an ID prefix so that
// it is a valid XML name and one token of aria-labelledby's list.
func cleanID(id string) string {
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z' || s[0] == '_') {
		s = "chart-" + s
	}
	return s
}

// clip shortens s to at most n runes, ending in "…" when it cut.
func clip(s string, n int) string {
	if n < 1 {
		n = 1
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// svgWriter builds one chart's markup.
type svgWriter struct {
	strings.Builder
}

// printf writes formatted markup; callers escape every data string.
func (w *svgWriter) printf(format string, args ...any) {
	fmt.Fprintf(&w.Builder, format, args...)
}

// open writes the <svg> element with its accessible name: a <title> and a
// <desc> that aria-labelledby points to. kind is the extra class
// ("line", "bars", "spark", "strip"); size is either `width="100%"` or
// fixed width and height attributes.
func (w *svgWriter) open(id, kind string, vw, vh float64, size, title, desc string) {
	w.printf(`<svg xmlns="http://www.w3.org/2000/svg" class="chart %s" viewBox="0 0 %s %s" %s`+
		` preserveAspectRatio="xMidYMid meet" font-size="11" role="img" aria-labelledby="%s-title %s-desc">`,
		kind, num(vw), num(vh), size, id, id)
	w.printf(`<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, esc(title), id, esc(desc))
}

// close ends the <svg> element.
func (w *svgWriter) close() {
	w.WriteString(`</svg>`)
}

// itoa writes an int.
func itoa(i int) string { return strconv.Itoa(i) }

// series writes one series of a Line or Spark as the data contract
// says (doc.go): a <g class="series sN"> with every value in
// data-values, then a <polyline> per unbroken run of finite values (a
// NaN, or a gap of more than 1.5 step, breaks it; step 0: no gaps), and
// a dot of radius r where a run is a lone point.
func (w *svgWriter) series(i int, name string, pts []Point, step time.Duration, xOf func(time.Time) float64, yOf func(float64) float64, r string) {
	vals := make([]string, len(pts))
	for j, p := range pts {
		vals[j] = rawValue(p.V)
	}
	w.printf(`<g class="series s%d" data-series="%s" data-values="%s" fill="none" stroke="currentColor">`,
		i%6, esc(name), strings.Join(vals, " "))
	var seg []string
	first := 0
	var last time.Time
	var lx, ly float64
	flush := func() {
		if len(seg) == 0 {
			return
		}
		w.printf(`<polyline class="line" data-first="%d" points="%s"/>`, first, strings.Join(seg, " "))
		if len(seg) == 1 { // a lone point draws no line: mark it
			w.printf(`<circle class="dot" cx="%s" cy="%s" r="%s" fill="currentColor"/>`, num(lx), num(ly), r)
		}
		seg = seg[:0]
	}
	for j, p := range pts {
		if !finite(p.V) {
			flush()
			continue
		}
		if len(seg) > 0 && step > 0 && p.T.Sub(last) > step*3/2 {
			flush()
		}
		if len(seg) == 0 {
			first = j
		}
		lx, ly, last = xOf(p.T), yOf(p.V), p.T
		seg = append(seg, num(lx)+","+num(ly))
	}
	flush()
	w.WriteString(`</g>`)
}

// valueRange is the lowest, highest and latest finite value of pts, and
// how many finite values there are.
func valueRange(pts []Point) (lo, hi, latest float64, n int) {
	for _, p := range pts {
		if !finite(p.V) {
			continue
		}
		if n == 0 {
			lo, hi = p.V, p.V
		}
		lo, hi, latest, n = min(lo, p.V), max(hi, p.V), p.V, n+1
	}
	return lo, hi, latest, n
}

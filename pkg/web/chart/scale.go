package chart

import (
	"math"
	"strconv"
	"time"
)

// niceMax returns the smallest "nice" number (1, 2, 2.5 or 5 times a power
// of ten) that is at least v, and the tick step that divides it into four
// or five intervals. A v that is not positive (or not finite) gives 1,
// so an all-zero chart still has an axis.
func niceMax(v float64) (top, step float64) {
	if !(v > 0) || math.IsInf(v, 1) {
		return 1, 0.25
	}
	exp := math.Floor(math.Log10(v))
	pow := math.Pow10(int(exp))
	f := v / pow
	for _, n := range [...]struct{ top, div float64 }{{1, 4}, {2, 4}, {2.5, 5}, {5, 5}, {10, 4}} {
		// The tolerance keeps 0.25/0.1 = 2.4999999999999996 at 2.5.
		if f <= n.top*(1+1e-9) {
			top = roundSig(n.top*pow, 12)
			return top, roundSig(top/n.div, 12)
		}
	}
	panic("unreachable: f < 10")
}

// roundSig rounds v to n significant digits, which strips the float noise
// of i*step (0.30000000000000004) before a number is printed.
func roundSig(v float64, n int) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', n, 64), 64)
	return r
}

// formatTick writes an axis tick compactly: 0, 0.25, 750, 1k, 1.5k, 2M, 1G.
func formatTick(v float64) string {
	v = roundSig(v, 6)
	a := math.Abs(v)
	suffix := ""
	switch {
	case a >= 1e9:
		v, suffix = v/1e9, "G"
	case a >= 1e6:
		v, suffix = v/1e6, "M"
	case a >= 1e3:
		v, suffix = v/1e3, "k"
	}
	return trimNum(strconv.FormatFloat(roundSig(v, 4), 'f', -1, 64)) + suffix
}

// formatValue writes a data value for people: whole numbers in full
// (1234567), others to about four significant digits (1.235, 0.01235,
// 123.5), never in exponent form. NaN and infinities read "no data".
func formatValue(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "no data"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return trimNum(strconv.FormatFloat(v, 'f', 0, 64))
	}
	dec := 3 - int(math.Floor(math.Log10(math.Abs(v))))
	dec = max(0, min(dec, 9))
	s := strconv.FormatFloat(v, 'f', dec, 64)
	if dec > 0 {
		for s[len(s)-1] == '0' {
			s = s[:len(s)-1]
		}
		if s[len(s)-1] == '.' {
			s = s[:len(s)-1]
		}
	}
	return trimNum(s)
}

// trimNum turns "-0" into "0".
func trimNum(s string) string {
	if s == "-0" {
		return "0"
	}
	return s
}

// rawValue writes a value exactly, as data-values carries it: the shortest
// decimal that parses back to the same float64, and "-" for no data.
func rawValue(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// num writes an SVG coordinate or length rounded to one decimal.
func num(v float64) string {
	return trimNum(strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64))
}

// finite reports whether v is a value to draw (not NaN, not infinite).
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// timeTicks picks the x-axis labels for the times t0..t1 on a plot w units
// wide: the smallest round interval (1s ... 28d, aligned in UTC) that gives
// at most seven labels none of which overlaps the next. It returns the
// label times and the layout to print them with.
func timeTicks(t0, t1 time.Time, w float64) ([]time.Time, string) {
	span := t1.Sub(t0)
	if span <= 0 {
		return []time.Time{t0}, pointLayout(0, 0)
	}
	steps := [...]time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 6 * time.Hour, 12 * time.Hour,
		24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 28 * 24 * time.Hour,
	}
	var d time.Duration
	var layout string
	for _, d = range steps {
		layout = tickLayout(span, d)
		gap := w * float64(d) / float64(span)
		if span/d+1 <= 7 && gap >= textWidth(layout)+12 {
			break
		}
	}
	// time.Truncate counts from the zero time, a Monday at midnight UTC,
	// so days start at midnight and weeks on Monday.
	var ticks []time.Time
	for t := t0.UTC().Truncate(d); !t.After(t1); t = t.Add(d) {
		if !t.Before(t0) {
			ticks = append(ticks, t)
		}
	}
	return ticks, layout
}

// tickLayout is the time layout of x-axis labels d apart over span: clock
// times up to a day, weekday and date for about a week, month and day
// beyond.
func tickLayout(span, d time.Duration) string {
	switch {
	case d < time.Minute:
		return "15:04:05"
	case span <= 24*time.Hour:
		return "15:04"
	case d < 24*time.Hour:
		return "Mon 15:04"
	case span <= 8*24*time.Hour:
		return "Mon 02"
	default:
		return "Jan 02"
	}
}

// pointLayout is the time layout of one point in a hover title or a table
// row, for points step apart over span: seconds only when the points are
// less than a minute apart, the day only when the span passes a day.
func pointLayout(span, step time.Duration) string {
	clock := "15:04"
	if step > 0 && step < time.Minute {
		clock = "15:04:05"
	}
	switch {
	case span <= 24*time.Hour:
		return clock
	case span <= 8*24*time.Hour:
		return "Mon 02 " + clock
	default:
		return "Jan 02 " + clock
	}
}

// textWidth estimates how wide s is drawn at the charts' 11-unit font.
func textWidth(s string) float64 {
	return 6.2 * float64(len([]rune(s)))
}

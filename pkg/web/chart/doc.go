// Package chart owns the dashboard's pictures: it renders line charts,
// horizontal bar charts, sparklines and worker state strips as inline SVG
// on the server, with nothing but the standard library, so the dashboard
// draws them offline and with JavaScript off. It knows nothing about
// Redis, history or pages: callers hand it numbers and put the returned
// template.HTML in a template ({{.Chart}}).
//
// # Use
//
//	c := chart.Line{
//		ID:    "jobs",                       // unique on the page
//		Title: "Jobs per minute, last hour",
//		Unit:  "jobs/min",
//		Step:  time.Minute,
//		Series: []chart.Series{
//			{Name: "processed", Points: processed},
//			{Name: "failed", Points: failed},
//		},
//	}
//	page.Chart, page.Numbers = c.SVG(), c.Table()
//
// and in the template
//
//	<figure class="chart">{{.Chart}}
//	<details><summary>Numbers</summary>{{.Numbers}}</details></figure>
//
// Line draws y from 0 to a nice maximum (1, 2, 2.5 or 5 times a power of
// ten) with four or five gridlines and compact tick labels (250, 1k,
// 1.5k, 2M), the unit on the y axis, up to seven UTC time labels on x
// (15:04 up to a day, "Mon 02" for a week, "Jan 02" beyond), and a legend
// when there is more than one series. A NaN value is "no data" and breaks
// the line, as does a gap of more than 1.5 Line.Step between points. Bars
// draws one horizontal bar per label (queue sizes), Spark a line with no
// axes for a table cell, Strip one coloured cell per worker state record.
// Line.Table and Bars.Table render the same numbers as an HTML table.
//
// # Safety and accessibility
//
// Every string that comes from data (titles, units, series names, labels,
// notes, states) is XML-escaped, and characters XML forbids become
// U+FFFD, so class and queue names from hostile payloads neither inject
// markup nor make the SVG malformed: every SVG this package writes is
// well-formed XML. Each <svg> has role="img" and aria-labelledby pointing
// to its <title> (the chart's Title) and <desc> (a summary: "14:00 to 14:59
// UTC: processed: 0 to 42 jobs/min, latest 17; failed: ..."; "no data"
// when there are no points). Every point's number is in a <title>
// shown on hover, and Table is the text alternative.
//
// # Styling
//
// The SVG holds no colours: elements carry classes and the dashboard's
// style.css colours them with CSS variables, so dark mode works. The root
// is <svg class="chart line"> (or bars, spark, strip); series and legend
// items carry "s0" ... "s5" (series i gets s(i mod 6)); gridlines are
// line.grid, the axes line.axis-line, tick labels text.tick, the unit and
// "Time (UTC)" text.axis-title, the legend g.legend, bars rect.bar (with
// "noted" when the bar has a note), strip cells rect.cell plus the state
// ("cell busy", "cell idle", "cell paused"; "cell none" for no record,
// "cell other" for a state that is not a plain lower-case word; an empty
// strip draws one rect.track instead), and the "no data" message
// text.nodata. Line, Bars and Strip are 100% wide with a
// viewBox (Line defaults to 720x220) and scale with their container, text
// included: give Width about the width the chart is drawn at in CSS pixels
// (360 for a chart in a half-width column) so that the 11-unit labels draw
// at about 11px. Spark has a fixed size (120x24).
//
// # Data contract
//
// Tests, ours and the dashboard's, read the numbers back from the SVG with
// encoding/xml; these names are kept stable:
//
//   - Line and Spark: one <g class="series sN" data-series="NAME"
//     data-values="V V ..."> per series, in input order. data-values holds
//     every input value in input order, exactly (strconv 'f', -1: it
//     parses back to the same float64), "-" for NaN or infinite. Inside,
//     one <polyline class="line" data-first="I" points="x,y x,y ..."> per
//     unbroken run, where I is the index in data-values of the run's first
//     point; together they have one point per finite value. A run of one
//     point also gets a <circle class="dot">. Coordinates are viewBox
//     units rounded to one decimal; y grows downwards and the plot's top
//     is the nice maximum.
//   - Line and Spark hover: <g class="hover"> holds one
//     <rect class="col" data-t="RFC3339"> per distinct time whose <title>
//     reads "14:05 UTC — processed 42 jobs/min, failed 3 jobs/min" (Spark:
//     "14:05 UTC 42 jobs"). Line's x-axis labels are
//     <text class="tick" data-t="RFC3339">.
//   - Bars: one <g class="row" data-label="NAME" data-value="V"
//     data-note="NOTE"> per bar, in input order, holding a <title>
//     ("default: 12 jobs (paused)") and a <rect class="bar">.
//   - Strip: one <rect class="cell STATE" data-t="RFC3339"
//     data-state="STATE"> per cell, in input order, whose <title> reads
//     "14:05:10 UTC busy" ("no record" for an empty state).
//   - Table: <table class="chart-data">, a <caption> with the title, a
//     header row, then one row per time (Line: <th scope="row"><time
//     datetime="RFC3339">) or bar, "no data" for a missing value.
//
// Element ids are ID+"-title" and ID+"-desc", nothing else; ID must be
// unique on the page.
package chart

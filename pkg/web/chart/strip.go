package chart

import (
	"html/template"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Cell is one record of a worker's state at time T: "busy", "idle",
// "paused", or "" for no record.
type Cell struct {
	T     time.Time
	State string
}

// Strip is a worker's state over time: one rect per cell, in the given
// order and evenly spaced, coloured by state.
type Strip struct {
	// ID and Title mean what they mean for Line.
	ID, Title string
	Cells     []Cell
	// Width and Height are the viewBox size; zero means 720 by 20.
	Width, Height int
}

// SVG renders the strip as an inline <svg> element. Each cell is a
// <rect class="cell STATE"> whose <title> reads "14:05:10 UTC busy"; a
// state that is not a plain lower-case word gets the class "other", an
// empty one "none".
func (c Strip) SVG() template.HTML {
	vw, vh := float64(dim(c.Width, 720)), float64(dim(c.Height, 20))
	id := cleanID(c.ID)
	var t0, t1 time.Time
	step := time.Duration(0)
	if len(c.Cells) > 0 {
		t0, t1 = c.Cells[0].T, c.Cells[len(c.Cells)-1].T
		if len(c.Cells) > 1 {
			step = t1.Sub(t0) / time.Duration(len(c.Cells)-1)
		}
	}
	layout := pointLayout(t1.Sub(t0), step)

	var w svgWriter
	// crispEdges snaps neighbouring cells to the same pixel column, so a
	// run of one state shows no anti-aliased seams.
	w.open(id, "strip", vw, vh, `width="100%" shape-rendering="crispEdges"`, c.Title, c.desc(layout))
	if len(c.Cells) == 0 {
		w.printf(`<rect class="track" x="0" y="0" width="%s" height="%s"/>`, num(vw), num(vh))
		w.printf(`<text class="nodata" x="%s" y="%s" text-anchor="middle">no data</text>`, num(vw/2), num(vh/2+4))
	}
	cw := vw / float64(max(len(c.Cells), 1))
	for i, cell := range c.Cells {
		state := cell.State
		if state == "" {
			state = "no record"
		}
		w.printf(`<rect class="cell %s" x="%s" y="0" width="%s" height="%s" data-t="%s" data-state="%s"><title>%s</title></rect>`,
			stateClass(cell.State), num(float64(i)*cw), num(float64(i+1)*cw-float64(i)*cw), num(vh),
			cell.T.UTC().Format(time.RFC3339), esc(cell.State), esc(cell.T.UTC().Format(layout)+" UTC "+state))
	}
	w.close()
	return template.HTML(w.String())
}

// desc gives the time range and each state's share of the cells:
// "14:00:00 to 14:59:50 UTC: busy 60%, idle 30%, no record 10% of 360".
func (c Strip) desc(layout string) string {
	if len(c.Cells) == 0 {
		return "no data"
	}
	count := map[string]int{}
	var states []string
	for _, cell := range c.Cells {
		if count[cell.State] == 0 {
			states = append(states, cell.State)
		}
		count[cell.State]++
	}
	rank := func(s string) int {
		switch s {
		case "busy":
			return 0
		case "idle":
			return 1
		case "paused":
			return 2
		case "":
			return 4
		}
		return 3
	}
	sort.SliceStable(states, func(i, j int) bool { return rank(states[i]) < rank(states[j]) })
	parts := make([]string, len(states))
	for i, s := range states {
		name := s
		if s == "" {
			name = "no record"
		}
		parts[i] = name + " " + strconv.Itoa((count[s]*100+len(c.Cells)/2)/len(c.Cells)) + "%"
	}
	t0, t1 := c.Cells[0].T.UTC(), c.Cells[len(c.Cells)-1].T.UTC()
	return t0.Format(layout) + " to " + t1.Format(layout) + " UTC: " + strings.Join(parts, ", ") +
		" of " + strconv.Itoa(len(c.Cells)) + " records"
}

// stateClass is the CSS class for a state: the state itself when it is a
// short lower-case word, "none" for no record, "other" otherwise.
func stateClass(s string) string {
	if s == "" {
		return "none"
	}
	if len(s) > 20 {
		return "other"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '-') {
			return "other"
		}
	}
	if s == "cell" || s == "other" || s == "none" {
		return "other"
	}
	return s
}

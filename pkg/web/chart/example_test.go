package chart_test

import (
	"fmt"
	"html/template"
	"os"
	"time"

	"github.com/resqued/resqued/pkg/web/chart"
)

func ExampleLine() {
	at := time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC)
	c := chart.Line{
		ID:    "jobs",
		Title: "Jobs per minute",
		Unit:  "jobs/min",
		Step:  time.Minute,
		Series: []chart.Series{
			{Name: "processed", Points: []chart.Point{{T: at, V: 42}, {T: at.Add(time.Minute), V: 17}}},
			{Name: "failed", Points: []chart.Point{{T: at, V: 3}, {T: at.Add(time.Minute), V: 0}}},
		},
	}
	page := template.Must(template.New("page").Parse(
		`<figure class="chart">{{.Chart}}<details><summary>Numbers</summary>{{.Numbers}}</details></figure>`))
	if err := page.Execute(os.Stdout, struct{ Chart, Numbers template.HTML }{c.SVG(), c.Table()}); err != nil {
		fmt.Println(err)
	}
}

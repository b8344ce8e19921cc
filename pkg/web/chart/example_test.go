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

func ExampleBars_Table() {
	c := chart.Bars{Title: "Queue sizes", Unit: "jobs", Bars: []chart.Bar{
		{Label: "default", V: 12},
		{Label: "mail", V: 3, Note: "paused"},
	}}
	fmt.Println(c.Table())
	// Output:
	// <table class="chart-data"><caption>Queue sizes</caption><thead><tr><th scope="col">Name</th><th scope="col" class="num">Value (jobs)</th><th scope="col">Note</th></tr></thead><tbody><tr><th scope="row">default</th><td class="num">12</td><td></td></tr><tr><th scope="row">mail</th><td class="num">3</td><td>paused</td></tr></tbody></table>
}

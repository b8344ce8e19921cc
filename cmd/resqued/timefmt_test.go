package main

import (
	"bytes"
	"testing"
	"time"
)

// TestHumanTime: every time format Resque stores comes out in the one
// human form.
func TestHumanTime(t *testing.T) {
	for in, want := range map[string]string{
		"2026/12/01 08:24:10 UTC":      "2026-12-01T08:24:10Z", // failed_at
		"2026-12-01 08:23:05 +0000":    "2026-12-01T08:23:05Z", // worker started (Time#to_s)
		"2026-12-01 09:23:05 +0100":    "2026-12-01T08:23:05Z",
		"2026-12-01T08:27:05+00:00":    "2026-12-01T08:27:05Z", // heartbeat
		"2026-12-01T08:27:05Z":         "2026-12-01T08:27:05Z", // run_at
		"2026-12-01T08:27:05.123Z":     "2026-12-01T08:27:05Z",
		"Tue Dec 01 08:24:10 UTC 2026": "2026-12-01T08:24:10Z",    // php-resque
		"2026/12/01 08:24:10 XYZ":      "2026/12/01 08:24:10 XYZ", // unknown zone: shown as stored
		"soon":                         "soon",
		"":                             "",
	} {
		if got := humanTime(in); got != want {
			t.Errorf("humanTime(%q) = %q, want %q", in, got, want)
		}
	}
	if got, want := humanTimeOf(time.Date(2026, 12, 1, 9, 0, 0, 0, time.FixedZone("CET", 3600))), "2026-12-01T08:00:00Z"; got != want {
		t.Errorf("humanTimeOf = %q, want %q", got, want)
	}
}

// TestPrintFailedTable: a retried record is marked as the dashboard
// marks it.
func TestPrintFailedTable(t *testing.T) {
	var b bytes.Buffer
	err := printFailedTable(&b, []failedRow{
		{Index: 0, FailedAt: "2026/12/01 08:24:10 UTC", Queue: "q", Class: "A", Exception: "E", Error: "boom", RetriedAt: "2026/12/01 09:00:00 UTC"},
		{Index: 1, FailedAt: "2026/12/01 08:25:00 UTC", Queue: "q", Class: "B", Exception: "E", Error: "bang"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"INDEX  FAILED_AT                                            QUEUE  CLASS  EXCEPTION  ERROR\n" +
		"0      2026-12-01T08:24:10Z (retried 2026-12-01T09:00:00Z)  q      A      E          boom\n" +
		"1      2026-12-01T08:25:00Z                                 q      B      E          bang\n"
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

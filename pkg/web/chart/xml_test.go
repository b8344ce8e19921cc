package chart_test

import (
	"html/template"
	"testing"

	"github.com/resqued/resqued/internal/svgtest"
)

// node is an element of a parsed chart (internal/svgtest).
type node = svgtest.Node

// parse reads markup as strict XML, and fails when it is not exactly one
// well-formed element.
func parse(tb testing.TB, h template.HTML) *node {
	tb.Helper()
	return svgtest.Parse(tb, string(h))
}

// checkAccessible checks the root is an <svg role="img"> whose
// aria-labelledby names its <title> and <desc>, and returns the desc.
func checkAccessible(tb testing.TB, root *node, id string) string {
	tb.Helper()
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		tb.Fatalf("root %v, want an SVG <svg>", root.XMLName)
	}
	if got := root.Attr("role"); got != "img" {
		tb.Errorf("role %q, want img", got)
	}
	if root.Attr("viewBox") == "" {
		tb.Errorf("no viewBox")
	}
	if got, want := root.Attr("aria-labelledby"), id+"-title "+id+"-desc"; got != want {
		tb.Errorf("aria-labelledby %q, want %q", got, want)
	}
	title, desc := root.ByID(id+"-title"), root.ByID(id+"-desc")
	if title == nil || title.XMLName.Local != "title" || desc == nil || desc.XMLName.Local != "desc" {
		tb.Fatalf("aria-labelledby does not point to a <title> and a <desc>: %v %v", title, desc)
	}
	return desc.Text
}

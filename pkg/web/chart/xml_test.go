package chart_test

import (
	"encoding/xml"
	"errors"
	"html/template"
	"io"
	"strings"
	"testing"
)

// node is an element of a parsed chart, read with encoding/xml the way
// a test of the dashboard would read it.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []*node    `xml:",any"`
}

// parse reads markup as strict XML, and fails when it is not exactly one
// well-formed element.
func parse(tb testing.TB, h template.HTML) *node {
	tb.Helper()
	n, err := parseErr(string(h))
	if err != nil {
		tb.Fatalf("not well-formed XML: %v\n%s", err, h)
	}
	return n
}

func parseErr(s string) (*node, error) {
	d := xml.NewDecoder(strings.NewReader(s))
	var n node
	if err := d.Decode(&n); err != nil {
		return nil, err
	}
	if tok, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the root element: " + strings.TrimSpace(stringOf(tok)))
	}
	return &n, nil
}

func stringOf(tok xml.Token) string {
	switch t := tok.(type) {
	case xml.CharData:
		return string(t)
	case xml.StartElement:
		return "<" + t.Name.Local + ">"
	}
	return "token"
}

// attr is the value of the attribute name, "" when absent.
func (n *node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// has reports whether n is a tag element with every one of the classes.
func (n *node) has(tag string, classes ...string) bool {
	if n.XMLName.Local != tag {
		return false
	}
	have := strings.Fields(n.attr("class"))
	for _, c := range classes {
		found := false
		for _, h := range have {
			found = found || h == c
		}
		if !found {
			return false
		}
	}
	return true
}

// all returns n and its descendants that are tag elements with the classes.
func (n *node) all(tag string, classes ...string) []*node {
	var out []*node
	var walk func(*node)
	walk = func(m *node) {
		if m.has(tag, classes...) {
			out = append(out, m)
		}
		for _, c := range m.Nodes {
			walk(c)
		}
	}
	walk(n)
	return out
}

// one returns the single tag element with the classes, failing otherwise.
func (n *node) one(tb testing.TB, tag string, classes ...string) *node {
	tb.Helper()
	all := n.all(tag, classes...)
	if len(all) != 1 {
		tb.Fatalf("%d <%s class=%q> elements, want 1", len(all), tag, strings.Join(classes, " "))
	}
	return all[0]
}

// child returns n's first direct child element named tag, or nil.
func (n *node) child(tag string) *node {
	for _, c := range n.Nodes {
		if c.XMLName.Local == tag {
			return c
		}
	}
	return nil
}

// texts returns the text of every tag element with the classes.
func (n *node) texts(tag string, classes ...string) []string {
	var out []string
	for _, m := range n.all(tag, classes...) {
		out = append(out, m.Text)
	}
	return out
}

// byID returns the element whose id is id, or nil.
func (n *node) byID(id string) *node {
	var found *node
	var walk func(*node)
	walk = func(m *node) {
		if found == nil && m.attr("id") == id {
			found = m
		}
		for _, c := range m.Nodes {
			walk(c)
		}
	}
	walk(n)
	return found
}

// checkAccessible checks the root is an <svg role="img"> whose
// aria-labelledby names its <title> and <desc>, and returns the desc.
func checkAccessible(tb testing.TB, root *node, id string) string {
	tb.Helper()
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		tb.Fatalf("root %v, want an SVG <svg>", root.XMLName)
	}
	if got := root.attr("role"); got != "img" {
		tb.Errorf("role %q, want img", got)
	}
	if root.attr("viewBox") == "" {
		tb.Errorf("no viewBox")
	}
	if got, want := root.attr("aria-labelledby"), id+"-title "+id+"-desc"; got != want {
		tb.Errorf("aria-labelledby %q, want %q", got, want)
	}
	title, desc := root.byID(id+"-title"), root.byID(id+"-desc")
	if title == nil || title.XMLName.Local != "title" || desc == nil || desc.XMLName.Local != "desc" {
		tb.Fatalf("aria-labelledby does not point to a <title> and a <desc>: %v %v", title, desc)
	}
	return desc.Text
}

// Package svgtest reads the dashboard's SVG charts back in tests, as
// strict XML, for pkg/web/chart's tests and pkg/web's alike.
package svgtest

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
)

// Node is an element of a parsed chart, read with encoding/xml the way
// a test of the dashboard would read it.
type Node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []*Node    `xml:",any"`
}

// Parse reads markup as strict XML, and fails when it is not exactly one
// well-formed element.
func Parse(tb testing.TB, s string) *Node {
	tb.Helper()
	n, err := ParseErr(s)
	if err != nil {
		tb.Fatalf("not well-formed XML: %v\n%s", err, s)
	}
	return n
}

func ParseErr(s string) (*Node, error) {
	d := xml.NewDecoder(strings.NewReader(s))
	var n Node
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

// Attr is the value of the attribute name, "" when absent.
func (n *Node) Attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// Has reports whether n is a tag element with every one of the classes.
func (n *Node) Has(tag string, classes ...string) bool {
	if n.XMLName.Local != tag {
		return false
	}
	have := strings.Fields(n.Attr("class"))
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

// All returns n and its descendants that are tag elements with the classes.
func (n *Node) All(tag string, classes ...string) []*Node {
	var out []*Node
	var walk func(*Node)
	walk = func(m *Node) {
		if m.Has(tag, classes...) {
			out = append(out, m)
		}
		for _, c := range m.Nodes {
			walk(c)
		}
	}
	walk(n)
	return out
}

// One returns the single tag element with the classes, failing otherwise.
func (n *Node) One(tb testing.TB, tag string, classes ...string) *Node {
	tb.Helper()
	all := n.All(tag, classes...)
	if len(all) != 1 {
		tb.Fatalf("%d <%s class=%q> elements, want 1", len(all), tag, strings.Join(classes, " "))
	}
	return all[0]
}

// Child returns n's first direct child element named tag, or nil.
func (n *Node) Child(tag string) *Node {
	for _, c := range n.Nodes {
		if c.XMLName.Local == tag {
			return c
		}
	}
	return nil
}

// Texts returns the text of every tag element with the classes.
func (n *Node) Texts(tag string, classes ...string) []string {
	var out []string
	for _, m := range n.All(tag, classes...) {
		out = append(out, m.Text)
	}
	return out
}

// ByID returns the element whose id is id, or nil.
func (n *Node) ByID(id string) *Node {
	var found *Node
	var walk func(*Node)
	walk = func(m *Node) {
		if found == nil && m.Attr("id") == id {
			found = m
		}
		for _, c := range m.Nodes {
			walk(c)
		}
	}
	walk(n)
	return found
}

// Values reads a data-values attribute (pkg/web/chart's data contract)
// back into floats, NaN for "-".
func Values(tb testing.TB, s string) []float64 {
	tb.Helper()
	var out []float64
	for _, f := range strings.Fields(s) {
		if f == "-" {
			out = append(out, math.NaN())
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			tb.Fatalf("bad value %q in %q", f, s)
		}
		out = append(out, v)
	}
	return out
}

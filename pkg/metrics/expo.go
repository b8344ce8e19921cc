package metrics

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// A Source adds its metric families to a scrape.
type Source interface {
	Collect(w *Writer)
}

// Registry is the set of sources one /metrics endpoint exposes, written
// in the order they were registered.
type Registry struct {
	mu      sync.Mutex
	sources []Source
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Register adds sources to the registry.
func (r *Registry) Register(s ...Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sources = append(r.sources, s...)
}

// Expose writes every source's families in the Prometheus text
// exposition format, version 0.0.4.
func (r *Registry) Expose(out io.Writer) error {
	r.mu.Lock()
	sources := append([]Source(nil), r.sources...)
	r.mu.Unlock()
	bw := bufio.NewWriter(out)
	w := &Writer{w: bw}
	for _, s := range sources {
		s.Collect(w)
	}
	return bw.Flush()
}

// contentType is the text exposition format's, which every Prometheus
// server accepts.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the registry's metrics.
func Handler(reg *Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-store")
		_ = reg.Expose(w)
	})
}

// Writer writes metric families in the text exposition format: Family
// starts one, Sample adds a sample to it.
type Writer struct {
	w   *bufio.Writer
	buf []byte
}

// Family writes a family's HELP and TYPE lines. kind is counter, gauge
// or histogram.
func (w *Writer) Family(name, help, kind string) {
	b := append(w.buf[:0], "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = appendEscaped(b, help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, kind...)
	b = append(b, '\n')
	w.buf = b
	_, _ = w.w.Write(b)
}

// Sample writes one sample: labels are name, value pairs.
func (w *Writer) Sample(name string, v float64, labels ...string) {
	b := append(w.buf[:0], name...)
	if len(labels) > 0 {
		b = append(b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, labels[i]...)
			b = append(b, `="`...)
			b = appendEscaped(b, labels[i+1], true)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	b = append(b, '\n')
	w.buf = b
	_, _ = w.w.Write(b)
}

// appendEscaped escapes a HELP text (backslash, newline) or a label value
// (also the double quote).
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

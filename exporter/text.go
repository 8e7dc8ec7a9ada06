package exporter

import (
	"bufio"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// textSink writes the Prometheus text exposition format (0.0.4). Label
// pairs come pre-rendered; a sample is a few appends into one buffer.
type textSink struct {
	w    *bufio.Writer
	sw   *stickyWriter
	name string
	buf  []byte
	// A histogram family's sample names and its bounds as text, made
	// once per family rather than once per hop.
	bucket, sum, count string
	les                []string
	lesOf              []float64
}

func newTextSink(sw *stickyWriter) *textSink {
	w := textBuffers.Get().(*bufio.Writer)
	w.Reset(sw)
	return &textSink{w: w, sw: sw, buf: make([]byte, 0, 512)}
}

// textBuffers are the scrapes' write buffers, reused.
var textBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func (t *textSink) begin(name, help string, typ metricType) {
	t.name = name
	if typ == typeHistogram {
		t.bucket, t.sum, t.count = name+"_bucket", name+"_sum", name+"_count"
	}
	t.w.WriteString("# HELP " + name + " " + helpEscaper.Replace(help) + "\n")
	t.w.WriteString("# TYPE " + name + " " + typ.String() + "\n")
}

func (t *textSink) end()       {}
func (t *textSink) err() error { return t.sw.err }
func (t *textSink) flush() error {
	err := t.w.Flush()
	t.w.Reset(nil)
	textBuffers.Put(t.w)
	t.w = nil
	return err
}

func (t *textSink) sample(l labels, k, v string, val float64) {
	t.line(t.name, l, k, v, val)
}

// line writes name{labels[,k="v"]} value.
func (t *textSink) line(name string, l labels, k, v string, val float64) {
	b := append(t.buf[:0], name...)
	b = append(b, '{')
	b = append(b, l...)
	if k != "" {
		if len(l) > 0 {
			b = append(b, ',')
		}
		b = appendLabel(b, k, v)
	}
	b = append(b, '}', ' ')
	b = appendFloat(b, val)
	b = append(b, '\n')
	t.w.Write(b)
	t.buf = b
}

func (t *textSink) histogram(l labels, bounds []float64, h *hopState) {
	if !slices.Equal(t.lesOf, bounds) {
		t.lesOf, t.les = bounds, t.les[:0]
		for _, ub := range bounds {
			t.les = append(t.les, string(appendFloat(nil, ub)))
		}
	}
	var acc uint64
	for i := range bounds {
		acc += h.buckets[i]
		t.line(t.bucket, l, "le", t.les[i], float64(acc))
	}
	t.line(t.bucket, l, "le", "+Inf", float64(h.count))
	t.line(t.sum, l, "", "", float64(h.sumNanos)/1e9)
	t.line(t.count, l, "", "", float64(h.count))
}

// renderText appends label pairs to b as the text format writes them, in
// the order given (the format does not require any; names are sorted
// here).
func renderText(b []byte, names, values []string) labels {
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLabel(b, n, values[i])
	}
	return b
}

func appendLabel(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, '=', '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

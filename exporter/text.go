package exporter

import (
	"bufio"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// textSink writes the Prometheus text exposition format (0.0.4), or
// OpenMetrics 1.0 when om is set. Label pairs come pre-rendered; a
// sample is a few appends into one buffer.
type textSink struct {
	w    *bufio.Writer
	sw   *stickyWriter
	name string
	buf  []byte
	// om writes OpenMetrics: a counter's family is named without its
	// _total suffix, the duration histogram's buckets carry exemplars,
	// and the exposition ends with # EOF.
	om bool
	// A histogram family's sample names and its bounds as text, made
	// once per family rather than once per hop.
	bucket, sum, count string
	les                []string
	lesOf              []float64
}

func newTextSink(sw *stickyWriter, om bool) *textSink {
	w := textBuffers.Get().(*bufio.Writer)
	w.Reset(sw)
	return &textSink{w: w, sw: sw, buf: make([]byte, 0, 512), om: om}
}

// textBuffers are the scrapes' write buffers, reused.
var textBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

var (
	helpEscaper   = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	omHelpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func (t *textSink) begin(name, help string, typ metricType) {
	t.name = name
	if typ == typeHistogram {
		t.bucket, t.sum, t.count = name+"_bucket", name+"_sum", name+"_count"
	}
	if t.om {
		// OpenMetrics names the counter family without _total; its
		// samples keep it.
		if typ == typeCounter {
			name = strings.TrimSuffix(name, "_total")
		}
		t.w.WriteString("# HELP " + name + " " + omHelpEscaper.Replace(help) + "\n")
	} else {
		t.w.WriteString("# HELP " + name + " " + helpEscaper.Replace(help) + "\n")
	}
	t.w.WriteString("# TYPE " + name + " " + typ.String() + "\n")
}

func (t *textSink) end()       {}
func (t *textSink) err() error { return t.sw.err }
func (t *textSink) flush() error {
	if t.om {
		t.w.WriteString("# EOF\n")
	}
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
	t.exemplarLine(name, l, k, v, val, nil)
}

// exemplarLine writes a line, with an OpenMetrics exemplar when ex is
// set: `# {trace_id="…"} value timestamp`.
func (t *textSink) exemplarLine(name string, l labels, k, v string, val float64, ex *exemplar) {
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
	if ex != nil {
		b = append(b, " # {"...)
		b = appendLabel(b, "trace_id", ex.traceID)
		b = append(b, "} "...)
		b = appendFloat(b, ex.value)
		b = append(b, ' ')
		b = strconv.AppendFloat(b, float64(ex.unixMs)/1e3, 'f', 3, 64)
	}
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
	var ex *exemplar
	if t.om && h.exemplar.traceID != "" {
		ex = &h.exemplar
	}
	exemplarAt := func(i int) *exemplar {
		if ex != nil && ex.bucket == i {
			return ex
		}
		return nil
	}
	var acc uint64
	for i := range bounds {
		acc += h.buckets[i]
		t.exemplarLine(t.bucket, l, "le", t.les[i], float64(acc), exemplarAt(i))
	}
	t.exemplarLine(t.bucket, l, "le", "+Inf", float64(h.count), exemplarAt(len(bounds)))
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

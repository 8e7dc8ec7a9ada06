package exporter

import (
	"bytes"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// protoSink writes the delimited protobuf exposition format
// (io.prometheus.client.MetricFamily, each prefixed by its length), the
// one format that carries native histograms. It is encoded here with
// protowire from the same pre-rendered label sets as the text, instead
// of building client_model structs for every series on every scrape
// (measured against client_golang's encoder in BenchmarkScrape).
//
// Field numbers are those of prometheus/client_model's metrics.proto.
type protoSink struct {
	sw     *stickyWriter
	typ    metricType
	fam    []byte // the family being built, without its metrics
	body   []byte // its metrics
	m      []byte // scratch for one metric
	h      []byte // scratch for one histogram
	sub    []byte // scratch for a bucket or span
	deltas []byte // scratch for a native histogram's bucket deltas
	val    []byte // scratch for an unescaped label value
	lp     []byte // scratch for a label pair
	out    []byte
}

func newProtoSink(sw *stickyWriter) *protoSink { return &protoSink{sw: sw} }

const (
	fFamilyName   = 1
	fFamilyHelp   = 2
	fFamilyType   = 3
	fFamilyMetric = 4

	fMetricLabel     = 1
	fMetricGauge     = 2
	fMetricCounter   = 3
	fMetricHistogram = 7

	fLabelName  = 1
	fLabelValue = 2

	fValue = 1 // Gauge.value, Counter.value

	fHistCount      = 1
	fHistSum        = 2
	fHistBucket     = 3
	fHistSchema     = 5
	fHistZeroThresh = 6
	fHistZeroCount  = 7
	fHistPosSpan    = 12
	fHistPosDelta   = 13

	fBucketCumulative = 1
	fBucketUpper      = 2

	fSpanOffset = 1
	fSpanLength = 2
)

// appendLabels encodes text-format label pairs (as renderText writes
// them: `k="v"` joined by commas, values escaped with \\, \" and \n) as
// repeated Metric.label fields.
func (p *protoSink) appendLabels(b []byte, l labels) []byte {
	for len(l) > 0 {
		eq := bytes.IndexByte(l, '=')
		if eq < 0 || eq+1 >= len(l) || l[eq+1] != '"' {
			return b // not ours: renderText always writes k="v"
		}
		k := l[:eq]
		v := p.val[:0]
		i := eq + 2
		for ; i < len(l) && l[i] != '"'; i++ {
			if l[i] == '\\' && i+1 < len(l) {
				i++
				if l[i] == 'n' {
					v = append(v, '\n')
					continue
				}
			}
			v = append(v, l[i])
		}
		p.val = v
		b = appendLabelPair(b, &p.lp, string(k), string(v))
		l = l[min(len(l), i+1):]
		if len(l) > 0 && l[0] == ',' {
			l = l[1:]
		}
	}
	return b
}

func appendLabelPair(b []byte, scratch *[]byte, k, v string) []byte {
	lp := (*scratch)[:0]
	lp = protowire.AppendTag(lp, fLabelName, protowire.BytesType)
	lp = protowire.AppendString(lp, k)
	lp = protowire.AppendTag(lp, fLabelValue, protowire.BytesType)
	lp = protowire.AppendString(lp, v)
	b = protowire.AppendTag(b, fMetricLabel, protowire.BytesType)
	b = protowire.AppendBytes(b, lp)
	*scratch = lp
	return b
}

func (p *protoSink) begin(name, help string, typ metricType) {
	f := p.fam[:0]
	f = protowire.AppendTag(f, fFamilyName, protowire.BytesType)
	f = protowire.AppendString(f, name)
	f = protowire.AppendTag(f, fFamilyHelp, protowire.BytesType)
	f = protowire.AppendString(f, help)
	f = protowire.AppendTag(f, fFamilyType, protowire.VarintType)
	f = protowire.AppendVarint(f, uint64(typ))
	p.fam, p.body, p.typ = f, p.body[:0], typ
}

// end writes the family, if it has any metric (an empty family is not
// written, as client_golang does).
func (p *protoSink) end() {
	if len(p.body) == 0 || p.sw.err != nil {
		return
	}
	o := protowire.AppendVarint(p.out[:0], uint64(len(p.fam)+len(p.body)))
	o = append(o, p.fam...)
	o = append(o, p.body...)
	p.out = o
	_, _ = p.sw.Write(o)
}

func (p *protoSink) err() error   { return p.sw.err }
func (p *protoSink) flush() error { return p.sw.err }

func (p *protoSink) metric(l labels, k, v string) []byte {
	m := p.appendLabels(p.m[:0], l)
	if k != "" {
		m = appendLabelPair(m, &p.sub, k, v)
	}
	return m
}

func (p *protoSink) addMetric(m []byte) {
	p.body = protowire.AppendTag(p.body, fFamilyMetric, protowire.BytesType)
	p.body = protowire.AppendBytes(p.body, m)
	p.m = m
}

func (p *protoSink) sample(l labels, k, v string, val float64) {
	m := p.metric(l, k, v)
	// Gauge and Counter both hold one double in field 1; which one the
	// metric is comes from the family's type.
	field := protowire.Number(fMetricGauge)
	if p.typ == typeCounter {
		field = fMetricCounter
	}
	m = protowire.AppendTag(m, field, protowire.BytesType)
	m = protowire.AppendVarint(m, uint64(protowire.SizeTag(fValue)+protowire.SizeFixed64()))
	m = protowire.AppendTag(m, fValue, protowire.Fixed64Type)
	m = protowire.AppendFixed64(m, mathFloat64bits(val))
	p.addMetric(m)
}

func (p *protoSink) histogram(l labels, bounds []float64, hs *hopState) {
	h := p.h[:0]
	h = protowire.AppendTag(h, fHistCount, protowire.VarintType)
	h = protowire.AppendVarint(h, hs.count)
	h = protowire.AppendTag(h, fHistSum, protowire.Fixed64Type)
	h = protowire.AppendFixed64(h, mathFloat64bits(float64(hs.sumNanos)/1e9))
	var acc uint64
	for i, ub := range bounds {
		acc += hs.buckets[i]
		b := p.sub[:0]
		b = protowire.AppendTag(b, fBucketCumulative, protowire.VarintType)
		b = protowire.AppendVarint(b, acc)
		b = protowire.AppendTag(b, fBucketUpper, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, mathFloat64bits(ub))
		p.sub = b
		h = protowire.AppendTag(h, fHistBucket, protowire.BytesType)
		h = protowire.AppendBytes(h, b)
	}
	// The snapshot carries native buckets only for a protobuf scrape and
	// only when the metrics block offers them.
	if nh := hs.native; nh != nil {
		h = protowire.AppendTag(h, fHistSchema, protowire.VarintType)
		h = protowire.AppendVarint(h, protowire.EncodeZigZag(int64(nh.schema)))
		h = protowire.AppendTag(h, fHistZeroThresh, protowire.Fixed64Type)
		h = protowire.AppendFixed64(h, mathFloat64bits(nativeZeroThreshold))
		h = protowire.AppendTag(h, fHistZeroCount, protowire.VarintType)
		h = protowire.AppendVarint(h, nh.zeroCount)
		deltas := p.deltas[:0]
		nh.spans(func(off int32, n uint32) {
			b := p.sub[:0]
			b = protowire.AppendTag(b, fSpanOffset, protowire.VarintType)
			b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(off)))
			b = protowire.AppendTag(b, fSpanLength, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(n))
			p.sub = b
			h = protowire.AppendTag(h, fHistPosSpan, protowire.BytesType)
			h = protowire.AppendBytes(h, b)
		}, func(d int64) { // packed after the spans: fields may come in any order
			deltas = protowire.AppendVarint(deltas, protowire.EncodeZigZag(d))
		})
		p.deltas = deltas
		if len(deltas) > 0 { // packed sint64
			h = protowire.AppendTag(h, fHistPosDelta, protowire.BytesType)
			h = protowire.AppendBytes(h, deltas)
		}
	}
	p.h = h
	m := p.metric(l, "", "")
	m = protowire.AppendTag(m, fMetricHistogram, protowire.BytesType)
	m = protowire.AppendBytes(m, h)
	p.addMetric(m)
}

func mathFloat64bits(f float64) uint64 { return math.Float64bits(f) }

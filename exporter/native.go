package exporter

import (
	"math"
	"slices"
	"sort"
)

// A native (sparse) histogram of one hop's successful probe durations,
// as Prometheus defines them: bucket i of schema s holds (b^(i-1), b^i]
// with b = 2^(2^-s). Only buckets that were hit are kept, so a hop whose
// latency stays within a factor of ten holds about 30 of them at schema 3.
//
// client_golang's native histogram is not used per hop for the reason the
// classic vectors are not (exporter.go): its per-series bookkeeping is
// kilobytes, and 10,000 hops would hold tens of MiB for a few counters.
type nativeHist struct {
	schema    int32
	zeroCount uint64
	buckets   []nativeBucket // ascending by index
}

type nativeBucket struct {
	index int32
	count uint64
}

const (
	// nativeSchema is the starting resolution: buckets 9 % wide.
	nativeSchema = 3
	// nativeMaxBuckets is where the resolution halves (schema − 1) to
	// stay bounded, as client_golang does by default.
	nativeMaxBuckets = 160
	// nativeZeroThreshold is client_golang's default: observations at or
	// below it count in the zero bucket.
	nativeZeroThreshold = 2.938735877055719e-39
)

// nativeBounds[s] are the upper bounds, as fractions of a power of two,
// of the 2^s buckets in one octave at schema s (0 ≤ s ≤ 8).
var nativeBounds = func() [9][]float64 {
	var out [9][]float64
	for s := range out {
		n := 1 << s
		out[s] = make([]float64, n)
		for i := range n {
			out[s][i] = math.Exp2(float64(i)/float64(n)) / 2
		}
	}
	return out
}()

func newNativeHist() *nativeHist { return &nativeHist{schema: nativeSchema} }

// index is the bucket v (> 0) falls in at schema s, exact at powers of
// two (0.5 s, the objective's bound, is one at every schema).
func nativeIndex(v float64, s int32) int32 {
	frac, exp := math.Frexp(v) // v = frac × 2^exp, frac in [0.5, 1)
	bounds := nativeBounds[s]
	return int32(sort.SearchFloat64s(bounds, frac) + (exp-1)*len(bounds))
}

func (h *nativeHist) observe(v float64) {
	if v <= nativeZeroThreshold {
		h.zeroCount++
		return
	}
	idx := nativeIndex(v, h.schema)
	i, found := slices.BinarySearchFunc(h.buckets, idx, func(b nativeBucket, t int32) int { return int(b.index) - int(t) })
	if found {
		h.buckets[i].count++
		return
	}
	h.buckets = slices.Insert(h.buckets, i, nativeBucket{idx, 1})
	for len(h.buckets) > nativeMaxBuckets && h.schema > 0 {
		h.halve()
	}
}

// halve lowers the resolution by one schema: bucket i becomes ⌈i/2⌉.
func (h *nativeHist) halve() {
	h.schema--
	out := h.buckets[:0]
	for _, b := range h.buckets {
		ni := (b.index + 1) >> 1 // ⌈i/2⌉, also for negative i
		if n := len(out); n > 0 && out[n-1].index == ni {
			out[n-1].count += b.count
			continue
		}
		out = append(out, nativeBucket{ni, b.count})
	}
	// Schema 0 is as far as it goes: 160 buckets there span 2^160,
	// more than any duration, so nativeBounds needs no negative schema.
	h.buckets = out
}

func (h *nativeHist) clone() *nativeHist {
	if h == nil {
		return nil
	}
	c := *h
	c.buckets = slices.Clone(h.buckets)
	return &c
}

// spans writes the buckets as Prometheus's spans and deltas: runs of
// consecutive indexes, each opened by its offset from the last, and the
// counts as differences from the previous one. A gap of one or two
// buckets is written as empty buckets inside the span instead, which is
// shorter on the wire, as client_golang does.
func (h *nativeHist) spans(span func(offset int32, length uint32), delta func(int64)) {
	if len(h.buckets) == 0 {
		return
	}
	var prev int64 // the previous bucket's count, for the deltas
	offset, length := h.buckets[0].index, uint32(0)
	last := h.buckets[0].index - 1
	for _, b := range h.buckets {
		switch gap := b.index - last - 1; {
		case gap > 2:
			span(offset, length)
			offset, length = gap, 0
		case gap > 0:
			for range gap {
				delta(-prev)
				prev = 0
				length++
			}
		}
		delta(int64(b.count) - prev)
		prev = int64(b.count)
		length++
		last = b.index
	}
	span(offset, length)
}

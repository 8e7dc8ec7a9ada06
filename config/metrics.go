package config

import (
	"math"
	"slices"
)

// Metrics is what `probe serve` exports per hop. Every series is a cost
// to every Prometheus that scrapes the prober (10,000 hops × one more
// series is 10,000 more to ingest, index and keep), so the defaults keep
// what the shipped alerts, rules and dashboards read, and no more.
type Metrics struct {
	// DurationBuckets are the classic upper bounds of
	// hopprobe_hop_duration_seconds, in seconds, ascending. The default
	// is the latency objective alone: the rules read its bucket.
	DurationBuckets []float64 `yaml:"duration_buckets"`
	// Phases says which hops export hopprobe_hop_phase_duration_seconds:
	// edge (the entry chain's request hops, HTTP and WebSocket, whose
	// connect, tls, first_byte and transfer tell the CDN from its origin;
	// the entry's TLS hop is that request's tls phase again), all, or
	// none.
	Phases string `yaml:"phases"`
	// NativeHistograms offers hopprobe_hop_duration_seconds as a native
	// (sparse) histogram to a scraper that negotiates the protobuf
	// format; the text format always carries the classic buckets.
	NativeHistograms *bool `yaml:"native_histograms"`
}

// Where phases are exported.
const (
	PhasesEdge = "edge"
	PhasesAll  = "all"
	PhasesNone = "none"
)

// LatencyObjective is the upper bound, in seconds, of the bucket the
// shipped latency rules read (le="0.5"). A bucket layout without it
// leaves those rules with no data, which reads as "no alert", so it is
// refused at load.
const LatencyObjective = 0.5

// maxBuckets bounds the classic layout: each bucket is a series per hop.
const maxBuckets = 32

// DefaultDurationBuckets is the classic layout when the file sets none.
var DefaultDurationBuckets = []float64{LatencyObjective}

// NativeOn says whether native histograms are offered (default yes).
func (m Metrics) NativeOn() bool { return m.NativeHistograms == nil || *m.NativeHistograms }

// WithDefaults is m with what the file left out filled in; the loader
// applies it, and so does anyone holding a Metrics of their own making.
func (m Metrics) WithDefaults() Metrics {
	if len(m.DurationBuckets) == 0 {
		m.DurationBuckets = slices.Clone(DefaultDurationBuckets)
	}
	if m.Phases == "" {
		m.Phases = PhasesEdge
	}
	return m
}

func (v *validator) validateMetrics() {
	m := v.cfg.Metrics
	at := loc("metrics")
	if m.Phases != "" && !oneOf(m.Phases, []string{PhasesEdge, PhasesAll, PhasesNone}) {
		v.errorf(append(at, "phases"), "phases must be edge, all or none, got %q", m.Phases)
	}
	b := m.DurationBuckets
	if len(b) == 0 {
		return
	}
	bat := append(at, "duration_buckets")
	if len(b) > maxBuckets {
		v.errorf(bat, "duration_buckets has %d bounds; at most %d (each is a series per hop)", len(b), maxBuckets)
	}
	for i, x := range b {
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0) || x <= 0:
			v.errorf(append(bat, i), "a bucket bound must be a positive number of seconds, got %v", x)
		case i > 0 && x <= b[i-1]:
			v.errorf(append(bat, i), "bucket bounds must be ascending: %v follows %v", x, b[i-1])
		}
	}
	if !slices.Contains(b, LatencyObjective) {
		v.errorf(bat, "duration_buckets must include %v, the latency objective's bound that the shipped rules read (le=\"0.5\")", LatencyObjective)
	}
}

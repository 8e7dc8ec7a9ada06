package exporter

import (
	"io"
	"slices"
	"sync"
)

// Metric types, as the text format names them and protobuf numbers them.
type metricType int32

const (
	typeCounter   metricType = 0
	typeGauge     metricType = 1
	typeHistogram metricType = 4
)

func (t metricType) String() string {
	switch t {
	case typeCounter:
		return "counter"
	case typeHistogram:
		return "histogram"
	}
	return "gauge"
}

// sink is one exposition format. A family is begun, its samples of
// every path written, then ended; a format that needs the whole family
// at once (protobuf) holds one family, never the scrape.
type sink interface {
	begin(name, help string, typ metricType)
	// sample writes a gauge or counter; extraKey/extraValue is one more
	// label (result, phase) or empty.
	sample(l labels, extraKey, extraValue string, v float64)
	histogram(l labels, bounds []float64, h *hopState)
	end()
	// err is the first write error: a scraper that hung up.
	err() error
	flush() error
}

// family is one metric family of the hop state: how to write its samples
// for one path.
type family struct {
	name, help string
	typ        metricType
	// write writes the family's samples of one path; scratch is the
	// scrape's own buffer for labels that are not kept.
	write func(s sink, ps *pathState, bounds []float64, scratch *[]byte)
}

var families = []family{
	{"hopprobe_hop_success", "1 if the hop answered as expected in the last walk of its path, 0 if not.", typeGauge,
		func(s sink, ps *pathState, _ []float64, _ *[]byte) {
			for _, h := range ps.hops {
				if h.probed {
					s.sample(h.lbl, "", "", gaugeOf(h.ok))
				}
			}
		}},
	// Sparse: present, at 1, only on a hop that cannot be reached from
	// this vantage; a probed hop has hopprobe_hop_success instead.
	{"hopprobe_hop_skipped", "1 on a hop that cannot be reached from this vantage and is not probed (absent on probed hops).", typeGauge,
		func(s sink, ps *pathState, _ []float64, _ *[]byte) {
			for _, h := range ps.hops {
				if h.walked && h.skipped {
					s.sample(h.lbl, "", "", 1)
				}
			}
		}},
	// Sparse: one series per broken path, on the hop to page about.
	{"hopprobe_hop_first_failing", "1 on the first failing hop of a broken path (the one to page about); absent on every other hop.", typeGauge,
		func(s sink, ps *pathState, _ []float64, _ *[]byte) {
			for _, h := range ps.hops {
				if h.walked && h.first {
					s.sample(h.lbl, "", "", 1)
				}
			}
		}},
	{"hopprobe_hop_duration_seconds", "Duration of each successful hop probe (failures are counted in hopprobe_hop_probes_total, not here).", typeHistogram,
		func(s sink, ps *pathState, bounds []float64, _ *[]byte) {
			for _, h := range ps.hops {
				if h.count > 0 {
					s.histogram(h.lbl, bounds, h)
				}
			}
		}},
	{"hopprobe_hop_phase_duration_seconds", "Duration of each phase (dns, connect, tls, first_byte, transfer, …) of the last probe of a hop (entry hops by default: metrics.phases).", typeGauge,
		func(s sink, ps *pathState, _ []float64, _ *[]byte) {
			for _, h := range ps.hops {
				for _, p := range h.phases {
					s.sample(h.lbl, "phase", p.name, p.secs)
				}
			}
		}},
	{"hopprobe_hop_probes_total", "Hop results by outcome: success, failure, skipped, or not_probed (no probe slot came free in time; the hop's last verdict stands).", typeCounter,
		func(s sink, ps *pathState, _ []float64, _ *[]byte) {
			for _, h := range ps.hops {
				for i, n := range h.counts {
					if n > 0 {
						s.sample(h.lbl, "result", results[i], float64(n))
					}
				}
			}
		}},
	// Sparse: only on a hop that has recovered at least once.
	{"hopprobe_hop_recovered_total", "Walks in which the hop failed and then passed when probed again (defaults.confirm): not failures, but each was a dropped packet or a blip.", typeCounter,
		func(s sink, ps *pathState, _ []float64, _ *[]byte) {
			for _, h := range ps.hops {
				if h.recovered > 0 {
					s.sample(h.lbl, "", "", float64(h.recovered))
				}
			}
		}},
	{"hopprobe_tls_cert_expiry_timestamp_seconds", "When the certificate chain a client verifies for the hop expires (the earliest NotAfter in it; of several verified chains the longest-lived), as a Unix timestamp. An unneeded certificate the server also sends does not count.", typeGauge,
		func(s sink, ps *pathState, _ []float64, _ *[]byte) {
			for _, h := range ps.hops {
				if h.certExpiry > 0 {
					s.sample(h.lbl, "", "", h.certExpiry)
				}
			}
		}},
	{"hopprobe_hop_exposed", "1 if a hop that must be unreachable from this vantage (a NodePort kept internal) answered: a security finding.", typeGauge,
		func(s sink, ps *pathState, _ []float64, _ *[]byte) {
			for _, h := range ps.hops {
				if h.mustNotOpen && h.probed {
					s.sample(h.lbl, "", "", gaugeOf(!h.ok))
				}
			}
		}},
	{"hopprobe_hop_node_info", "Always 1: what a hop is (kind, namespace, the component it probes, its position 00, 01, … in its path), for joins on path, hop and vantage.", typeGauge,
		func(s sink, ps *pathState, _ []float64, scratch *[]byte) {
			p := ps.path
			for _, h := range ps.hops {
				*scratch = renderText((*scratch)[:0], nodeLabelNames, []string{h.name, h.kind, p.Namespace, h.node, p.ID, h.position, p.Vantage})
				s.sample(*scratch, "", "", 1)
			}
		}},
	{"hopprobe_path_success", "1 if no probed hop of the path failed in its last walk.", typeGauge,
		func(s sink, ps *pathState, _ []float64, scratch *[]byte) {
			if ps.walked {
				p := ps.path
				*scratch = renderText((*scratch)[:0], pathLabelNames, []string{p.Namespace, p.ID, p.Service, p.Vantage})
				s.sample(*scratch, "", "", gaugeOf(ps.ok))
			}
		}},
	{"hopprobe_path_duration_seconds", "Wall time of the last walk of the path.", typeGauge,
		func(s sink, ps *pathState, _ []float64, scratch *[]byte) {
			if ps.walked {
				*scratch = renderText((*scratch)[:0], walkLabelNames, []string{ps.path.ID, ps.path.Vantage})
				s.sample(*scratch, "", "", ps.duration)
			}
		}},
}

func gaugeOf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var edgeLabelNames = []string{"source", "target", "vantage"}

// writeHopMetrics writes the hop, path and topology families from a
// snapshot of the exporter's state: the lock is held only to copy a few
// numbers per hop, never while writing to the scraper, so a scraper
// that stops reading cannot stop a walk (Observe waits for the lock).
// The text streams out; a scrape of 10,000 hops never holds its
// samples in memory at once (protobuf holds one family).
func (e *Exporter) writeHopMetrics(s sink, withNative bool) error {
	sn := snapPool.Get().(*snap)
	defer snapPool.Put(sn)
	paths, edges, l := e.snapshot(sn, withNative)
	scratch := sn.scratch[:0]
	defer func() { sn.scratch = scratch }()
	for _, f := range families {
		s.begin(f.name, f.help, f.typ)
		for _, ps := range paths {
			// A scraper that hung up ends the scrape at the next path
			// instead of after every family of every path.
			if err := s.err(); err != nil {
				return err
			}
			f.write(s, ps, l.bounds, &scratch)
		}
		s.end()
	}
	s.begin("hopprobe_topology_edge_info", "Always 1: a documented link between two components that some path walks.", typeGauge)
	for _, k := range edges {
		scratch = renderText(scratch[:0], edgeLabelNames, k[:])
		s.sample(scratch, "", "", 1)
	}
	s.end()
	s.begin("hopprobe_edge_pop_info", "Always 1: the CloudFront point of presence (X-Amz-Cf-Pop) of an edge component's last answer that named one, from this vantage: where this site's users enter. Kept while the component fails.", typeGauge)
	for _, l := range sn.pops {
		s.sample(l, "", "", 1)
	}
	s.end()
	s.begin("hopprobe_path_chain_info", "Always 1: the chain of components the last answer of a route path showed (observed) against the documented one (expected), and the verdict: matched, alternative (a documented alternative way in answered), mismatch, or unknown.", typeGauge)
	for _, c := range sn.chains {
		s.sample(c.lbl, "", "", 1)
	}
	s.end()
	s.begin("hopprobe_path_chain_mismatch", "1 if the last answer of a route path showed a chain of components that is neither its documented one nor a documented alternative (a gateway bypassed, a layer answering itself).", typeGauge)
	for _, c := range sn.chains {
		s.sample(c.pathLbl, "", "", gaugeOf(c.mismatch))
	}
	s.end()
	s.begin("hopprobe_hop_evidence_changes_total", "Changes in what a hop showed between two walks, by kind: certificate, dns_answer, leader, role, pop, chain.", typeCounter)
	for _, c := range sn.changes {
		s.sample(c.lbl, "", "", float64(c.n))
	}
	s.end()
	return s.flush()
}

// snap holds a scrape's copy of the hop state, reused by the next scrape.
type snap struct {
	pops    [][]byte
	chains  []chainSample
	changes []changeCount
	states  []pathState
	out     []*pathState
	hops    []hopState
	ptrs    []*hopState
	buckets []uint64
	scratch []byte
}

var snapPool = sync.Pool{New: func() any { return new(snap) }}

// grow returns s with length n, reusing its array when it is big enough.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// stickyWriter keeps the first error of w and fails every write after it.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

// snapshot copies what the metric families read. Label sets are never
// changed after a path's state is made, so they are shared; the numbers,
// the phases and the native buckets (changed in place by observe) are
// copied.
func (e *Exporter) snapshot(sn *snap, withNative bool) ([]*pathState, [][3]string, layout) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	// Slabs reused from scrape to scrape (snapPool), instead of several
	// small objects per hop on every scrape: the garbage of back-to-back
	// scrapes was what raised the prober's peak RSS.
	nHops := 0
	for _, id := range e.order {
		nHops += len(e.paths[id].hops)
	}
	states, out := grow(sn.states, len(e.order)), grow(sn.out, len(e.order))
	hops, ptrs := grow(sn.hops, nHops), grow(sn.ptrs, nHops)
	buckets := grow(sn.buckets, nHops*len(e.layout.bounds))[:0]
	sn.states, sn.out, sn.hops, sn.ptrs = states, out, hops, ptrs
	for i, id := range e.order {
		states[i] = *e.paths[id]
		ps := &states[i]
		n := len(ps.hops)
		mine, myPtrs := hops[:n:n], ptrs[:n:n]
		hops, ptrs = hops[n:], ptrs[n:]
		for j, h := range ps.hops {
			mine[j] = *h
			c := &mine[j]
			if len(h.phases) > 0 {
				c.phases = slices.Clone(h.phases)
			}
			start := len(buckets)
			buckets = append(buckets, h.buckets...)
			c.buckets = buckets[start:len(buckets):len(buckets)]
			c.native = nil
			if withNative {
				c.native = h.native.clone()
			}
			myPtrs[j] = c
		}
		ps.hops = myPtrs
		out[i] = ps
	}
	sn.buckets = buckets
	sn.pops = e.popSamples(sn.pops[:0])
	sn.chains, sn.changes = sn.chains[:0], sn.changes[:0]
	for _, id := range e.order {
		ws := e.walks[id]
		if ws == nil {
			continue
		}
		if ws.chainLbl != nil {
			ps := e.paths[id]
			sn.chains = append(sn.chains, chainSample{lbl: ws.chainLbl, pathLbl: ps.walkLbl, mismatch: ws.chainMismatch})
		}
		sn.changes = append(sn.changes, ws.changes...)
	}
	return out, e.edges, e.layout
}

// chainSample is a route path's chain series, copied for a scrape.
type chainSample struct {
	lbl, pathLbl []byte
	mismatch     bool
}

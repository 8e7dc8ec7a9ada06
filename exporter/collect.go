package exporter

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// Label sets, in name order as client_golang writes them. Every value
// comes from the topology file, so cardinality is bounded by it; no
// address, error text or per-request value is a label.
var (
	hopLabels  = []string{"hop", "kind", "namespace", "path", "service", "vantage"}
	pathLabels = []string{"namespace", "path", "service", "vantage"}
	nodeLabels = []string{"hop", "node", "path", "position", "vantage"}
)

// durationBuckets are the upper bounds of hopprobe_hop_duration_seconds.
var durationBuckets = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Results counted by hopprobe_hop_probes_total.
var results = [...]string{"success", "failure", "skipped", "not_probed"}

// hopState is all the exporter keeps of a hop between scrapes.
type hopState struct {
	labels      []string // values of hopLabels
	role        targets.Role
	nodeLabels  []string // values of descNode's labels
	mustNotOpen bool

	walked, skipped, ok, first bool
	probed                     bool // answered or failed at least once
	counts                     [len(results)]uint64
	count                      uint64
	sum                        float64
	buckets                    [len(durationBuckets)]uint64 // per bucket, not cumulative
	phases                     []phase
	certExpiry                 float64
}

// identity is what a hop is across generations of its path: its name
// and kind (hopLabels' first two values).
func (h *hopState) identity() [2]string { return [2]string{h.labels[0], h.labels[1]} }

// node is the component the hop probes (nodeLabels' second value).
func (h *hopState) node() string { return h.nodeLabels[1] }

type phase struct {
	name string
	secs float64
}

// pathState is a path's identity, last walk and hops.
type pathState struct {
	sig      string
	path     *targets.Path // the running generation's path; walks of any other are stale
	labels   []string      // values of pathLabels
	hops     []*hopState
	walked   bool
	ok       bool
	first    int
	duration float64
	status   PathStatus
}

func newPathState(p *targets.Path) *pathState {
	ps := &pathState{sig: signature(p), path: p, labels: []string{p.Namespace, p.ID, p.Service, p.Vantage}, status: Pending(p)}
	for i, h := range p.Hops {
		ps.hops = append(ps.hops, &hopState{
			labels:      []string{h.Name, string(h.Kind), p.Namespace, p.ID, p.Service, p.Vantage},
			nodeLabels:  []string{h.Name, h.Node, p.ID, fmt.Sprintf("%02d", i), p.Vantage},
			mustNotOpen: h.Target.ExpectUnreachable,
			role:        h.Role,
		})
	}
	return ps
}

// carry keeps what the last walk said about the hops that the path still
// has (same name and kind) when its hops change: a pod that joins or
// leaves a Service changes every path through it, and the other hops'
// series go on (counters keep counting, a failing hop stays failing until
// the next walk says otherwise) instead of restarting and resetting the
// alerts that wait on them. The path's verdict is kept too, unless the
// hop that broke it is gone; then it is pending until the next walk.
func (ps *pathState) carry(old *pathState) {
	idx := make(map[[2]string]int, len(ps.hops))
	for i, h := range ps.hops {
		idx[h.identity()] = i
	}
	for _, o := range old.hops {
		i, ok := idx[o.identity()]
		if !ok || ps.hops[i].mustNotOpen != o.mustNotOpen {
			continue
		}
		h := ps.hops[i]
		h.walked, h.skipped, h.ok, h.first, h.probed = o.walked, o.skipped, o.ok, o.first, o.probed
		h.counts, h.count, h.sum, h.buckets = o.counts, o.count, o.sum, o.buckets
		h.phases, h.certExpiry = slices.Clone(o.phases), o.certExpiry
	}
	if !old.walked {
		return
	}
	first := -1
	if old.first >= 0 {
		o := old.hops[old.first]
		i, ok := idx[o.identity()]
		if !ok {
			for _, h := range ps.hops {
				h.first = false
			}
			return
		}
		first = i
	}
	ps.walked, ps.ok, ps.first, ps.duration, ps.status = true, old.ok, first, old.duration, old.status
}

func (ps *pathState) observe(r scheduler.PathResult, st PathStatus) {
	ps.walked, ps.ok, ps.first, ps.duration, ps.status = true, r.Success, r.FirstFailing, r.Duration.Seconds(), st
	for i, hr := range r.Hops {
		h := ps.hops[i]
		h.walked, h.first, h.skipped = true, i == r.FirstFailing, hr.Skipped
		switch {
		case hr.Skipped:
			h.counts[2]++
			continue
		case hr.NotProbed:
			// No slot came free: the hop's last verdict stands, and the
			// miss is counted on its own.
			h.counts[3]++
			continue
		}
		h.ok, h.probed = hr.Success, true
		if hr.Success {
			h.counts[0]++
		} else {
			h.counts[1]++
		}
		// The latency objective is about answers: a failed probe's
		// duration (often its timeout) belongs to the availability alerts,
		// and counting it as "slow" paged a second time for one outage.
		if hr.Success {
			d := hr.Duration.Seconds()
			h.count++
			h.sum += d
			for b, ub := range durationBuckets {
				if d <= ub {
					h.buckets[b]++
					break
				}
			}
		}
		h.phases = h.phases[:0]
		for _, ph := range hr.Phases {
			h.phases = addPhase(h.phases, ph.Name, ph.Duration)
		}
		if !hr.CertExpiry.IsZero() {
			h.certExpiry = float64(hr.CertExpiry.Unix())
		}
	}
}

// addPhase sums repeated phases (a probe that dialled twice) into one.
func addPhase(ps []phase, name string, d time.Duration) []phase {
	for i := range ps {
		if ps[i].name == name {
			ps[i].secs += d.Seconds()
			return ps
		}
	}
	return append(ps, phase{name, d.Seconds()})
}

// family is one metric family of the hop state: how to write its samples
// for one path.
type family struct {
	name, help, typ string
	write           func(t *textWriter, ps *pathState)
}

var families = []family{
	{"hopprobe_hop_success", "1 if the hop answered as expected in the last walk of its path, 0 if not.", "gauge",
		func(t *textWriter, ps *pathState) {
			for _, h := range ps.hops {
				if h.probed {
					t.sample("hopprobe_hop_success", hopLabels, h.labels, "", "", gaugeOf(h.ok))
				}
			}
		}},
	{"hopprobe_hop_skipped", "1 if the hop cannot be reached from this vantage and was not probed.", "gauge",
		func(t *textWriter, ps *pathState) {
			for _, h := range ps.hops {
				if h.walked {
					t.sample("hopprobe_hop_skipped", hopLabels, h.labels, "", "", gaugeOf(h.skipped))
				}
			}
		}},
	{"hopprobe_hop_first_failing", "1 if this hop is the first failing hop of its path (the one to page about), else 0.", "gauge",
		func(t *textWriter, ps *pathState) {
			for _, h := range ps.hops {
				if h.walked {
					t.sample("hopprobe_hop_first_failing", hopLabels, h.labels, "", "", gaugeOf(h.first))
				}
			}
		}},
	{"hopprobe_hop_duration_seconds", "Duration of each successful hop probe (failures are counted in hopprobe_hop_probes_total, not here).", "histogram",
		func(t *textWriter, ps *pathState) {
			for _, h := range ps.hops {
				if h.count == 0 {
					continue
				}
				var acc uint64
				for b, ub := range durationBuckets {
					acc += h.buckets[b]
					t.sample("hopprobe_hop_duration_seconds_bucket", hopLabels, h.labels, "le", formatFloat(ub), float64(acc))
				}
				t.sample("hopprobe_hop_duration_seconds_bucket", hopLabels, h.labels, "le", "+Inf", float64(h.count))
				t.sample("hopprobe_hop_duration_seconds_sum", hopLabels, h.labels, "", "", h.sum)
				t.sample("hopprobe_hop_duration_seconds_count", hopLabels, h.labels, "", "", float64(h.count))
			}
		}},
	{"hopprobe_hop_phase_duration_seconds", "Duration of each phase (dns, connect, tls, first_byte, transfer, …) of the last probe of a hop.", "gauge",
		func(t *textWriter, ps *pathState) {
			for _, h := range ps.hops {
				for _, p := range h.phases {
					t.sample("hopprobe_hop_phase_duration_seconds", hopLabels, h.labels, "phase", p.name, p.secs)
				}
			}
		}},
	{"hopprobe_hop_probes_total", "Hop results by outcome: success, failure, skipped, or not_probed (no probe slot came free in time; the hop's last verdict stands).", "counter",
		func(t *textWriter, ps *pathState) {
			for _, h := range ps.hops {
				for i, n := range h.counts {
					if n > 0 {
						t.sample("hopprobe_hop_probes_total", hopLabels, h.labels, "result", results[i], float64(n))
					}
				}
			}
		}},
	{"hopprobe_tls_cert_expiry_timestamp_seconds", "Earliest NotAfter of the certificate chain the hop presented, as a Unix timestamp.", "gauge",
		func(t *textWriter, ps *pathState) {
			for _, h := range ps.hops {
				if h.certExpiry > 0 {
					t.sample("hopprobe_tls_cert_expiry_timestamp_seconds", hopLabels, h.labels, "", "", h.certExpiry)
				}
			}
		}},
	{"hopprobe_hop_exposed", "1 if a hop that must be unreachable from this vantage (a NodePort kept internal) answered: a security finding.", "gauge",
		func(t *textWriter, ps *pathState) {
			for _, h := range ps.hops {
				if h.mustNotOpen && h.probed {
					t.sample("hopprobe_hop_exposed", hopLabels, h.labels, "", "", gaugeOf(!h.ok))
				}
			}
		}},
	{"hopprobe_hop_node_info", "Always 1: the component (entry hop, namespace/service or data store) a hop probes and the hop's position (00, 01, …) in its path, for joins.", "gauge",
		func(t *textWriter, ps *pathState) {
			for _, h := range ps.hops {
				t.sample("hopprobe_hop_node_info", nodeLabels, h.nodeLabels, "", "", 1)
			}
		}},
	{"hopprobe_path_success", "1 if no probed hop of the path failed in its last walk.", "gauge",
		func(t *textWriter, ps *pathState) {
			if ps.walked {
				t.sample("hopprobe_path_success", pathLabels, ps.labels, "", "", gaugeOf(ps.ok))
			}
		}},
	{"hopprobe_path_first_failing_hop_position", "Position (0-based) of the first failing hop of the path, -1 when healthy.", "gauge",
		func(t *textWriter, ps *pathState) {
			if ps.walked {
				t.sample("hopprobe_path_first_failing_hop_position", pathLabels, ps.labels, "", "", float64(ps.first))
			}
		}},
	{"hopprobe_path_duration_seconds", "Wall time of the last walk of the path.", "gauge",
		func(t *textWriter, ps *pathState) {
			if ps.walked {
				t.sample("hopprobe_path_duration_seconds", pathLabels, ps.labels, "", "", ps.duration)
			}
		}},
}

func gaugeOf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// textWriter writes samples in the Prometheus text exposition format.
type textWriter struct {
	w *bufio.Writer
}

func (t *textWriter) header(name, help, typ string) {
	t.w.WriteString("# HELP " + name + " " + strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help) + "\n")
	t.w.WriteString("# TYPE " + name + " " + typ + "\n")
}

func (t *textWriter) sample(name string, keys, values []string, extraKey, extraValue string, v float64) {
	t.w.WriteString(name)
	t.w.WriteByte('{')
	n := 0
	put := func(k, v string) {
		if n > 0 {
			t.w.WriteByte(',')
		}
		n++
		t.label(k, v)
	}
	for i, k := range keys {
		// The extra label (le, phase, result) goes in name order too.
		if extraKey != "" && extraKey < k {
			put(extraKey, extraValue)
			extraKey = ""
		}
		put(k, values[i])
	}
	if extraKey != "" {
		put(extraKey, extraValue)
	}
	t.w.WriteString("} ")
	t.w.WriteString(formatFloat(v))
	t.w.WriteByte('\n')
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func (t *textWriter) label(k, v string) {
	t.w.WriteString(k)
	t.w.WriteString(`="`)
	labelEscaper.WriteString(t.w, v)
	t.w.WriteByte('"')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// writeHopMetrics writes the hop, path and topology families from a
// snapshot of the exporter's state: the lock is held only to copy a few
// numbers per hop, never while writing to the scraper, so a scraper
// that stops reading cannot stop a walk (Observe waits for the lock).
// The text streams out; a scrape of 10,000 hops never holds its
// samples in memory at once.
func (e *Exporter) writeHopMetrics(w io.Writer) error {
	paths, edges := e.snapshot()
	// A scraper that hung up ends the scrape at the next path instead of
	// after every family of every path.
	sw := &stickyWriter{w: w}
	bw := bufio.NewWriterSize(sw, 64<<10)
	t := &textWriter{w: bw}
	for _, f := range families {
		t.header(f.name, f.help, f.typ)
		for _, ps := range paths {
			if sw.err != nil {
				return sw.err
			}
			f.write(t, ps)
		}
	}
	t.header("hopprobe_topology_edge_info", "Always 1: a documented link between two components that some path walks.", "gauge")
	for _, k := range edges {
		t.sample("hopprobe_topology_edge_info", []string{"source", "target", "vantage"}, k[:], "", "", 1)
	}
	return bw.Flush()
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

// snapshot copies what the metric families read. Label slices are never
// changed after a path's state is made, so they are shared; the numbers
// and the phases (reused in place by observe) are copied.
func (e *Exporter) snapshot() ([]*pathState, [][3]string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*pathState, len(e.order))
	for i, id := range e.order {
		ps := *e.paths[id]
		ps.status = PathStatus{}
		hops := make([]*hopState, len(ps.hops))
		for j, h := range ps.hops {
			c := *h
			c.phases = slices.Clone(h.phases)
			hops[j] = &c
		}
		ps.hops = hops
		out[i] = &ps
	}
	edges := make([][3]string, 0, len(e.edges))
	for k := range e.edges {
		edges = append(edges, k)
	}
	return out, edges
}

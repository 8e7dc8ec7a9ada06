package exporter

import (
	"fmt"
	"slices"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// Series layout. Every hop series carries only what identifies the hop
// (path, hop, vantage); what describes it (kind, namespace, service, the
// component probed, its position) is on hopprobe_hop_node_info, once per
// hop, for joins. Every value comes from the topology file, so
// cardinality is bounded by it; no address, error text or per-request
// value is a label. hopprobe_path_success names the path's namespace and
// service (alerts route on them); the walk's duration needs only the path.
var (
	hopLabelNames  = []string{"hop", "path", "vantage"}
	pathLabelNames = []string{"namespace", "path", "service", "vantage"}
	walkLabelNames = []string{"path", "vantage"}
	nodeLabelNames = []string{"hop", "kind", "namespace", "node", "path", "position", "vantage"}
)

// Results counted by hopprobe_hop_probes_total.
var results = [...]string{"success", "failure", "skipped", "not_probed"}

// layout is what the metrics block of the topology says to export.
type layout struct {
	bounds []float64 // classic upper bounds, ascending, without +Inf
	phases string    // config.PhasesEdge, PhasesAll or PhasesNone
	native bool
}

func layoutOf(m config.Metrics) layout {
	m = m.WithDefaults()
	return layout{bounds: slices.Clone(m.DurationBuckets), phases: m.Phases, native: m.NativeOn()}
}

func (l layout) equal(o layout) bool {
	return slices.Equal(l.bounds, o.bounds) && l.phases == o.phases && l.native == o.native
}

// labels are a series' label pairs as the text format writes them
// (`k="v",…`); the protobuf format encodes them from this text. A hop's
// own labels, on most of its series, are rendered once when its path is
// built; the labels of a series written once per hop or path per scrape
// (node info, path) are rendered into a scratch buffer as they are
// written, so that 10,000 hops do not keep megabytes of copies.
type labels []byte

// hopState is all the exporter keeps of a hop between scrapes.
type hopState struct {
	name, kind  string
	node        string // the component it probes
	role        targets.Role
	mustNotOpen bool
	phased      bool // exports its phases

	lbl      labels // hopLabelNames
	position string

	walked, skipped, ok, first bool
	probed                     bool // answered or failed at least once
	counts                     [len(results)]uint64
	recovered                  uint64 // walks where a retry passed after a failure
	count                      uint64
	sumNanos                   int64
	buckets                    []uint64 // per classic bound, not cumulative
	native                     *nativeHist
	phases                     []phase
	certExpiry                 float64
	// The last successful probe, shown as an exemplar on its bucket
	// when the scrape asks for OpenMetrics, so that a latency panel
	// links to the walk's trace.
	exemplar exemplar
}

// exemplar is one observation of a hop's duration histogram with the
// trace id of the walk it came from.
type exemplar struct {
	traceID string
	value   float64
	unixMs  int64
	bucket  int // index into the classic bounds; len(bounds) is +Inf
}

// hopKey is what a hop is across changes of its path: the series it
// exports go on while the path has a hop of the same key.
type hopKey struct {
	name, kind  string
	mustNotOpen bool
}

func keyOf(h *targets.Hop) hopKey {
	return hopKey{name: h.Name, kind: string(h.Kind), mustNotOpen: h.Target.ExpectUnreachable}
}

type phase struct {
	name string
	secs float64
}

// pathState is a path's last walk and hops.
type pathState struct {
	path     *targets.Path // the running version; walks of any other are stale
	hops     []*hopState
	walked   bool
	ok       bool
	first    int
	duration float64
	walkLbl  labels // path, vantage
}

// buildPath makes p's state in layout l around the hop states that old,
// the path's state before a change, has under the same keys: their
// counters and histograms go on, and a failing hop stays failing until
// the next walk, as the alerts waiting on them expect (a pod that joins
// or leaves a Service changes every path through it). The path's verdict
// stays too, unless the hop that broke it is gone; then it is pending
// until the next walk. old is nil for a new path.
func buildPath(p *targets.Path, l layout, old *pathState) *pathState {
	ps := &pathState{path: p, walkLbl: renderText(nil, walkLabelNames, []string{p.ID, p.Vantage})}
	kept := map[hopKey]*hopState{}
	if old != nil && old.path.Vantage == p.Vantage {
		for _, h := range old.hops {
			kept[hopKey{name: h.name, kind: h.kind, mustNotOpen: h.mustNotOpen}] = h
		}
	}
	for i := range p.Hops {
		h := &p.Hops[i]
		hs := kept[keyOf(h)]
		delete(kept, keyOf(h))
		if hs == nil {
			hs = &hopState{lbl: renderText(nil, hopLabelNames, []string{h.Name, p.ID, p.Vantage})}
			hs.resetHistogram(l)
		}
		hs.describe(h, i, l)
		ps.hops = append(ps.hops, hs)
	}
	if old == nil || !old.walked {
		return ps
	}
	first := -1
	if old.first >= 0 {
		if first = slices.Index(ps.hops, old.hops[old.first]); first < 0 {
			for _, h := range ps.hops {
				h.first = false
			}
			return ps
		}
	}
	ps.walked, ps.ok, ps.first, ps.duration = true, old.ok, first, old.duration
	return ps
}

// describe sets what the hop's info series and phases say of it: what
// it probes, its position, whether it exports its phases in layout l.
func (hs *hopState) describe(h *targets.Hop, i int, l layout) {
	hs.name, hs.kind, hs.node, hs.role, hs.mustNotOpen = h.Name, string(h.Kind), h.Node, h.Role, h.Target.ExpectUnreachable
	hs.position = fmt.Sprintf("%02d", i)
	hs.phased = l.phases == config.PhasesAll || (l.phases == config.PhasesEdge && h.Role == targets.RoleEdge && h.Kind != hop.KindTLS)
	if !hs.phased {
		hs.phases = nil
	}
}

// resetHistogram starts the duration histogram again in layout l's
// buckets: a histogram cannot go on in others.
func (hs *hopState) resetHistogram(l layout) {
	hs.count, hs.sumNanos, hs.exemplar = 0, 0, exemplar{}
	hs.buckets = make([]uint64, len(l.bounds))
	hs.native = nil
	if l.native {
		hs.native = newNativeHist()
	}
}

func (ps *pathState) observe(r scheduler.PathResult, bounds []float64) {
	ps.walked, ps.ok, ps.first, ps.duration = true, r.Success, r.FirstFailing, r.Duration.Seconds()
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
		if hr.Recovered() {
			h.recovered++
		}
		// The latency objective is about answers: a failed probe's
		// duration (often its timeout) belongs to the availability alerts,
		// and counting it as "slow" paged a second time for one outage.
		if hr.Success {
			d := hr.Duration.Seconds()
			h.count++
			h.sumNanos += hr.Duration.Nanoseconds()
			bucket := len(bounds)
			for b, ub := range bounds {
				if d <= ub {
					h.buckets[b]++
					bucket = b
					break
				}
			}
			if tid := hr.Details[hop.TraceIDDetail]; tid != "" {
				h.exemplar = exemplar{traceID: tid, value: d, unixMs: hr.Start.Add(hr.Duration).UnixMilli(), bucket: bucket}
			}
			if h.native != nil {
				h.native.observe(d)
			}
		}
		if h.phased {
			h.phases = h.phases[:0]
			for _, ph := range hr.Phases {
				h.phases = addPhase(h.phases, ph.Name, ph.Duration)
			}
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

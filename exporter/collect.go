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
	name, kind  string // what identifies the hop across generations of its path
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

// identity is what a hop is across generations of its path.
func (h *hopState) identity() [2]string { return [2]string{h.name, h.kind} }

type phase struct {
	name string
	secs float64
}

// pathState is a path's identity, last walk and hops.
type pathState struct {
	sig      string
	path     *targets.Path // the running generation's path; walks of any other are stale
	hops     []*hopState
	walked   bool
	ok       bool
	first    int
	duration float64
	walkLbl  labels // path, vantage
}

func newPathState(p *targets.Path, l layout) *pathState {
	ps := &pathState{sig: signature(p), path: p, walkLbl: renderText(nil, walkLabelNames, []string{p.ID, p.Vantage})}
	for i, h := range p.Hops {
		hs := &hopState{
			name: h.Name, kind: string(h.Kind), node: h.Node, role: h.Role,
			mustNotOpen: h.Target.ExpectUnreachable,
			phased:      l.phases == config.PhasesAll || (l.phases == config.PhasesEdge && h.Role == targets.RoleEdge && h.Kind != hop.KindTLS),
			lbl:         renderText(nil, hopLabelNames, []string{h.Name, p.ID, p.Vantage}),
			position:    fmt.Sprintf("%02d", i),
			buckets:     make([]uint64, len(l.bounds)),
		}
		if l.native {
			hs.native = newNativeHist()
		}
		ps.hops = append(ps.hops, hs)
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
func (ps *pathState) carry(old *pathState, sameBuckets bool) {
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
		h.counts, h.recovered, h.certExpiry = o.counts, o.recovered, o.certExpiry
		if h.phased {
			h.phases = slices.Clone(o.phases)
		}
		// A histogram goes on only in the same buckets; otherwise it
		// starts again.
		if sameBuckets {
			h.count, h.sumNanos, h.buckets, h.native = o.count, o.sumNanos, slices.Clone(o.buckets), o.native.clone()
			h.exemplar = o.exemplar
		}
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
	ps.walked, ps.ok, ps.first, ps.duration = true, old.ok, first, old.duration
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

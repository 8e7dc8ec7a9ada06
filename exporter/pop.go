package exporter

import (
	"regexp"
	"slices"
	"strings"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// popDetail is the evidence of the CloudFront point of presence that
// served an answer.
var popDetail = hop.HeaderDetail("X-Amz-Cf-Pop")

// popCode is what a CloudFront POP looks like (SIN2-P1, NRT57-P3,
// FRA56-C1). The header comes from a peer: only a value of this shape
// becomes a label, so that an answer cannot mint series.
var popCode = regexp.MustCompile(`^[A-Z]{3}[0-9]{1,3}(-[A-Z0-9]{1,4})?$`)

// popKey is an edge component as seen from a vantage.
type popKey struct{ node, vantage string }

var popLabelNames = []string{"node", "pop", "vantage"}

// notePops keeps, per edge component and vantage, the POP that its last
// answer naming one came from: one series per component, not per hop,
// since every path through a distribution enters at the same POP from
// one place. It is kept while the component answers without the header
// or fails, so that an alert on a site that cannot reach the edge still
// says where its users enter. e.mu is held.
func (e *Exporter) notePops(r scheduler.PathResult) {
	for i := range r.Hops {
		h := &r.Path.Hops[i]
		if h.Role != targets.RoleEdge {
			continue
		}
		if pop := r.Hops[i].Details[popDetail]; pop != "" && popCode.MatchString(pop) {
			e.pops[popKey{h.Node, r.Path.Vantage}] = pop
		}
	}
}

// dropPops forgets the POPs of edge components no path has any more.
// e.mu is held.
func (e *Exporter) dropPops(paths []*targets.Path) {
	if len(e.pops) == 0 {
		return
	}
	have := map[popKey]bool{}
	for _, p := range paths {
		for _, h := range p.Hops {
			if h.Role == targets.RoleEdge {
				have[popKey{h.Node, p.Vantage}] = true
			}
		}
	}
	for k := range e.pops {
		if !have[k] {
			delete(e.pops, k)
		}
	}
}

// popSamples are the POP series' labels, sorted, for a scrape. e.mu is
// held.
func (e *Exporter) popSamples(out [][]byte) [][]byte {
	keys := make([]popKey, 0, len(e.pops))
	for k := range e.pops {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b popKey) int {
		if c := strings.Compare(a.node, b.node); c != 0 {
			return c
		}
		return strings.Compare(a.vantage, b.vantage)
	})
	for _, k := range keys {
		out = append(out, renderText(nil, popLabelNames, []string{k.node, e.pops[k], k.vantage}))
	}
	return out
}

package web

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// Graph is the documented topology as components and links, each
// component coloured by the last walks of the hops that probe it: the
// live version of the documents' Mermaid flowcharts.
type Graph struct {
	Nodes  []GraphNode  `json:"nodes"`
	Edges  []GraphEdge  `json:"edges"`
	Groups []GraphGroup `json:"groups"`
	// Width and Height are the drawing's size in pixels.
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
}

// GraphNode is one component: an entry hop, a namespace/service or a
// data store.
type GraphNode struct {
	ID string `json:"id"`
	// Kind is dns, edge, service or store.
	Kind string `json:"kind"`
	// Health is ok, failed, skipped or pending: failed when any hop that
	// probes the component failed in its last walk.
	Health string `json:"health"`
	// Rank is the column in a left-to-right drawing: the longest chain of
	// links from an entry to this component.
	Rank int `json:"rank"`
	// Hops is how many hops (over all paths) probe the component.
	Hops int `json:"hops"`
	// Drift lists how the live side differs for this component.
	Drift []string `json:"drift,omitempty"`
	// LatencyMS is the slowest of its hops' last answers (0 when none
	// answered).
	LatencyMS float64 `json:"latency_ms"`
	// Group is a service's namespace or a store's kind; Label is what the
	// map writes in the box (a service's name without its namespace,
	// which its group's frame shows).
	Group string `json:"group,omitempty"`
	Label string `json:"label"`
	// Box is where the map draws it.
	Box
	storeKind string
}

// GraphEdge is a documented link that some path walks.
type GraphEdge struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// Points is the polyline the map draws, from the source's bottom to
	// the target, through the free space between boxes only.
	Points [][2]float64 `json:"points"`
}

// hopView is what the graph needs of one hop.
type hopView struct {
	node, verdict string
	role          targets.Role
	storeKind     string
	latencyMS     float64
}

func viewOf(h *targets.Hop, st status.HopStatus) hopView {
	v := hopView{node: h.Node, role: h.Role, verdict: st.Verdict, latencyMS: st.LatencyMS}
	if h.Role == targets.RoleStore {
		v.storeKind = string(h.Kind)
	}
	return v
}

// buildGraph folds hops into components; verdicts combine as failed >
// ok > pending > skipped.
func buildGraph(hops []hopView, edges [][2]string) Graph {
	weight := map[string]int{status.VerdictSkipped: 0, status.VerdictPending: 1, status.VerdictNotProbed: 1, status.VerdictOK: 2, status.VerdictFailed: 3}
	byID := map[string]*GraphNode{}
	var order []string
	for _, h := range hops {
		n := byID[h.node]
		if n == nil {
			n = &GraphNode{ID: h.node, Kind: h.role.Component(), Health: status.VerdictSkipped}
			byID[h.node] = n
			order = append(order, h.node)
		}
		n.Hops++
		if h.verdict == status.VerdictOK || h.verdict == status.VerdictFailed {
			n.LatencyMS = max(n.LatencyMS, h.latencyMS)
		}
		if h.storeKind != "" {
			n.storeKind = h.storeKind
		}
		if weight[h.verdict] > weight[n.Health] {
			n.Health = h.verdict
		}
	}
	g := Graph{Edges: []GraphEdge{}}
	for _, e := range edges {
		g.Edges = append(g.Edges, GraphEdge{Source: e[0], Target: e[1]})
	}
	slices.SortFunc(g.Edges, func(a, b GraphEdge) int {
		return strings.Compare(a.Source+"\x00"+a.Target, b.Source+"\x00"+b.Target)
	})
	// Longest-path ranks; the graph is acyclic, so |nodes| rounds settle it.
	for range len(order) {
		changed := false
		for _, e := range g.Edges {
			s, t := byID[e.Source], byID[e.Target]
			if s != nil && t != nil && t.Rank < s.Rank+1 {
				t.Rank, changed = s.Rank+1, true
			}
		}
		if !changed {
			break
		}
	}
	for _, id := range order {
		g.Nodes = append(g.Nodes, *byID[id])
	}
	slices.SortStableFunc(g.Nodes, func(a, b GraphNode) int {
		if a.Rank != b.Rank {
			return a.Rank - b.Rank
		}
		return strings.Compare(a.ID, b.ID)
	})
	g.layout()
	return g
}

// GraphOfBoard returns the topology coloured by the board's last walks,
// with the last drift check's differences on their components.
func GraphOfBoard(b *status.Board) Graph {
	snap := b.Snapshot()
	g := GraphOf(snap.Paths, snap.Statuses)
	// A component an answer skipped is shown as bypassed, as loud as a
	// failure: every hop answered, so nothing else would colour it.
	skipped := map[string]bool{}
	for _, st := range snap.Statuses {
		for _, c := range st.Bypassed {
			skipped[c] = true
		}
	}
	for i := range g.Nodes {
		if skipped[g.Nodes[i].ID] {
			g.Nodes[i].Health = status.VerdictBypassed
		}
		for _, d := range snap.Drift {
			if d.Subject == g.Nodes[i].ID {
				g.Nodes[i].Drift = append(g.Nodes[i].Drift, d.Kind+": "+d.Detail)
			}
		}
	}
	return g
}

// GraphOf builds the graph of paths from their statuses (one-shot walks
// for `probe map`, or Pending ones for an uncoloured drawing), which are
// in the same order as paths.
func GraphOf(paths []*targets.Path, statuses []status.PathStatus) Graph {
	var hops []hopView
	seen := map[[2]string]bool{}
	var edges [][2]string
	for i, p := range paths {
		for j := range p.Hops {
			hops = append(hops, viewOf(&p.Hops[j], statuses[i].Hops[j]))
		}
		for _, e := range p.Edges() {
			if !seen[e] {
				seen[e] = true
				edges = append(edges, e)
			}
		}
	}
	return buildGraph(hops, edges)
}

// WriteMermaid prints g as a Mermaid flowchart with one class per health,
// ready to paste into a README.
func (g Graph) WriteMermaid(w io.Writer) error {
	id := func(s string) string {
		return "n_" + strings.NewReplacer("/", "_", "-", "_", ".", "_", ":", "_", "*", "_").Replace(s)
	}
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for _, n := range g.Nodes {
		fmt.Fprintf(&b, "  %s[\"%s\"]:::%s\n", id(n.ID), n.ID, n.Health)
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s --> %s\n", id(e.Source), id(e.Target))
	}
	b.WriteString("  classDef ok fill:#2e9e55,color:#fff,stroke:#1f6b3a\n")
	b.WriteString("  classDef failed fill:#d64541,color:#fff,stroke:#8e2a27\n")
	b.WriteString("  classDef skipped fill:#d8dde3,color:#4a525c,stroke:#9aa3ad\n")
	b.WriteString("  classDef pending fill:#eef0f3,color:#6b7480,stroke:#c3c9d0\n")
	_, err := io.WriteString(w, b.String())
	return err
}

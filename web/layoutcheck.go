package web

import (
	"fmt"
	"math"
	"strings"
)

// LayoutProblems says where a laid-out graph breaks the map's rules: two
// boxes that overlap, an edge that runs through a box (or leaves and
// enters anywhere but its own ends), a tier out of order (entries and
// load balancers above services, services above stores), a service
// outside its namespace's frame, a label wider than its box. The map's
// tests share it: the layout's own test on its numbers, the browser test
// on what Chromium drew.
func LayoutProblems(g Graph) []string {
	var out []string
	byID := map[string]GraphNode{}
	for i, a := range g.Nodes {
		byID[a.ID] = a
		for _, b := range g.Nodes[i+1:] {
			if overlaps(a.Box, b.Box, 0) {
				out = append(out, fmt.Sprintf("%s and %s overlap", a.ID, b.ID))
			}
		}
		if w := float64(len([]rune(a.Label)))*charWidth + 8; w > a.W && !strings.HasSuffix(a.Label, "…") {
			out = append(out, fmt.Sprintf("the label %q (%.0f px) does not fit its box (%.0f px)", a.Label, w, a.W))
		}
	}
	for _, e := range g.Edges {
		if len(e.Points) < 2 {
			out = append(out, fmt.Sprintf("%s → %s is not drawn", e.Source, e.Target))
			continue
		}
		for k := 1; k < len(e.Points); k++ {
			a, b := e.Points[k-1], e.Points[k]
			for _, n := range g.Nodes {
				// The first run leaves the source and the last enters
				// the target; every other meeting with a box is a fault.
				if (k == 1 && n.ID == e.Source) || (k == len(e.Points)-1 && n.ID == e.Target) {
					continue
				}
				if segmentHits(a, b, n.Box) {
					out = append(out, fmt.Sprintf("%s → %s runs through %s", e.Source, e.Target, n.ID))
				}
			}
		}
		if s, ok := byID[e.Source]; ok && !onBorder(e.Points[0], s.Box) {
			out = append(out, fmt.Sprintf("%s → %s does not start on %s", e.Source, e.Target, e.Source))
		}
		if t, ok := byID[e.Target]; ok && !onBorder(e.Points[len(e.Points)-1], t.Box) {
			out = append(out, fmt.Sprintf("%s → %s does not end on %s", e.Source, e.Target, e.Target))
		}
	}
	tier := func(n GraphNode) int {
		switch n.Kind {
		case "service":
			return 1
		case "store":
			return 2
		}
		return 0
	}
	for _, a := range g.Nodes {
		for _, b := range g.Nodes {
			if tier(a) < tier(b) && a.Y+a.H > b.Y {
				out = append(out, fmt.Sprintf("%s (%s) is not above %s (%s)", a.ID, a.Kind, b.ID, b.Kind))
			}
		}
		if a.Kind == "service" {
			in := false
			for _, gr := range g.Groups {
				if gr.Name == a.Group && inside(a.Box, gr.Box) {
					in = true
				}
			}
			if !in {
				out = append(out, fmt.Sprintf("%s is outside its namespace's frame", a.ID))
			}
		}
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("and %d more", len(out)-20))
	}
	return out
}

func overlaps(a, b Box, pad float64) bool {
	return a.X < b.X+b.W+pad && b.X < a.X+a.W+pad && a.Y < b.Y+b.H+pad && b.Y < a.Y+a.H+pad
}

func inside(a, b Box) bool {
	return a.X >= b.X && a.Y >= b.Y && a.X+a.W <= b.X+b.W && a.Y+a.H <= b.Y+b.H
}

func onBorder(p [2]float64, b Box) bool {
	const eps = 0.5
	in := p[0] >= b.X-eps && p[0] <= b.X+b.W+eps && p[1] >= b.Y-eps && p[1] <= b.Y+b.H+eps
	edge := math.Abs(p[0]-b.X) < eps || math.Abs(p[0]-b.X-b.W) < eps || math.Abs(p[1]-b.Y) < eps || math.Abs(p[1]-b.Y-b.H) < eps
	return in && edge
}

// segmentHits says whether the segment a–b (horizontal or vertical, as
// the map draws them; any other is checked by its bounding box) meets the
// box, border included.
func segmentHits(a, b [2]float64, box Box) bool {
	seg := Box{X: min(a[0], b[0]), Y: min(a[1], b[1]), W: math.Abs(a[0] - b[0]), H: math.Abs(a[1] - b[1])}
	return seg.X <= box.X+box.W && box.X <= seg.X+seg.W && seg.Y <= box.Y+box.H && box.Y <= seg.Y+seg.H
}

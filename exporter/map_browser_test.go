package exporter_test

import (
	"bytes"
	"image/png"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/targets"
)

// drawn is the map as Chromium drew it, read back from the DOM.
type drawn struct {
	W, H  float64
	Nodes []struct {
		ID, Kind, Group, Label string
		X, Y, W, H             float64
		// Texts are the label and verdict lines' boxes, in the node's
		// own coordinates.
		Texts []struct{ X, Y, W, H float64 }
	}
	Groups []struct {
		Name       string
		X, Y, W, H float64
	}
	// Edges are points sampled every 2 px along each drawn path.
	Edges []struct {
		Source, Target string
		Points         [][2]float64
	}
}

const readMap = `(() => {
  const svg = document.getElementById('map');
  const nodes = [...svg.querySelectorAll('g[data-node]')].map(g => {
    const m = g.transform.baseVal.consolidate().matrix, r = g.querySelector('rect');
    return {ID: g.dataset.node, Kind: g.dataset.kind, Group: g.dataset.group, Label: g.querySelector('text').textContent,
      X: m.e, Y: m.f, W: r.width.baseVal.value, H: r.height.baseVal.value,
      Texts: [...g.querySelectorAll('text')].map(t => { const b = t.getBBox(); return {X: b.x, Y: b.y, W: b.width, H: b.height}; })};
  });
  const groups = [...svg.querySelectorAll('g[data-group] > rect')].filter(r => r.parentNode.classList.contains('group')).map(r => {
    const b = r.getBBox(); return {Name: r.parentNode.dataset.group, X: b.x, Y: b.y, W: b.width, H: b.height};
  });
  const edges = [...svg.querySelectorAll('path.edge')].map(p => {
    const len = p.getTotalLength(), pts = [];
    for (let l = 0; l <= len; l += 2) { const q = p.getPointAtLength(l); pts.push([q.x, q.y]); }
    const q = p.getPointAtLength(len); pts.push([q.x, q.y]);
    return {Source: p.dataset.source, Target: p.dataset.target, Points: pts};
  });
  return {W: svg.width.baseVal.value, H: svg.height.baseVal.value, Nodes: nodes, Groups: groups, Edges: edges};
})()`

// The map of a generated topology of 75 services, as headless Chromium
// draws it: every label inside its box, no drawn edge through any box,
// entries above services above stores, every service inside its
// namespace's frame, and the screenshot shows each box in its colour.
// HOPPROBE_SCREENSHOTS=dir keeps the screenshot.
func TestMapDrawsSeventyFiveServicesReadably(t *testing.T) {
	paths, err := targets.Expand(testkit.Generated(t, 75), "cluster")
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Headless(t, "the map of 75 services")
	srv := httptest.NewServer(exporter.New(paths).Handler())
	t.Cleanup(srv.Close)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/map")); err != nil {
		t.Fatalf("opening the map: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.WaitVisible(chromedp.CSS(`g[data-node="etcdnew"]`))); err != nil {
		t.Fatalf("the map never drew etcdnew: %v", err)
	}
	d, err := chromedp.Run(ctx, chromedp.Evaluate[drawn](readMap))
	if err != nil {
		t.Fatalf("reading the map back: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking the screenshot: %v", err)
	}
	services := 0
	var g exporter.Graph
	for _, n := range d.Nodes {
		if n.Kind == "service" {
			services++
		}
		for _, tb := range n.Texts {
			if tb.X < 0 || tb.Y < 0 || tb.X+tb.W > n.W || tb.Y+tb.H > n.H {
				t.Errorf("%s: a label (%.0f×%.0f at %.0f,%.0f) spills out of its %.0f×%.0f box", n.ID, tb.W, tb.H, tb.X, tb.Y, n.W, n.H)
			}
		}
		g.Nodes = append(g.Nodes, exporter.GraphNode{ID: n.ID, Kind: n.Kind, Group: n.Group, Label: n.Label, Box: exporter.Box{X: n.X, Y: n.Y, W: n.W, H: n.H}})
	}
	if services != 75 || len(d.Edges) == 0 || len(d.Groups) < 3 {
		t.Fatalf("drew %d services, %d edges, %d groups; want 75 services, edges and the namespaces' frames", services, len(d.Edges), len(d.Groups))
	}
	for _, gr := range d.Groups {
		g.Groups = append(g.Groups, exporter.GraphGroup{Name: gr.Name, Box: exporter.Box{X: gr.X, Y: gr.Y, W: gr.W, H: gr.H}})
	}
	// Boxes, tiers, frames (LayoutProblems on what was drawn, edges
	// apart: they are checked point by point below).
	for _, p := range exporter.LayoutProblems(g) {
		t.Error(p)
	}
	for _, e := range d.Edges {
		for _, n := range g.Nodes {
			// One pixel in from the border: an edge ends on it.
			for _, p := range e.Points {
				if p[0] > n.X+1 && p[0] < n.X+n.W-1 && p[1] > n.Y+1 && p[1] < n.Y+n.H-1 {
					t.Errorf("the drawn edge %s → %s passes through %s at %.0f,%.0f", e.Source, e.Target, n.ID, p[0], p[1])
					break
				}
			}
		}
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is no PNG: %v", err)
	}
	const svgLeft = 16 // the body's margin; the heading above is measured
	top, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.getElementById('map').getBoundingClientRect().top + window.scrollY`))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); float64(b.Dx()) < d.W || float64(b.Dy()) < top+d.H {
		t.Errorf("the screenshot is %v, smaller than the map (%.0f×%.0f)", b, d.W, d.H)
	}
	// Each box shows its colour (pending: #eef0f3) just inside its left
	// border, where no text is: nothing is drawn over a box.
	for _, n := range g.Nodes {
		x, y := svgLeft+int(n.X)+4, int(top+n.Y+n.H/2)
		r, gr, b, _ := img.At(x, y).RGBA()
		if r>>8 != 0xee || gr>>8 != 0xf0 || b>>8 != 0xf3 {
			t.Errorf("%s: the screenshot shows #%02x%02x%02x at %d,%d, not its pending colour", n.ID, r>>8, gr>>8, b>>8, x, y)
		}
	}
	if dir := os.Getenv("HOPPROBE_SCREENSHOTS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "map-75-services.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d components, %d edges, %d frames on %.0f×%.0f px", len(d.Nodes), len(d.Edges), len(d.Groups), d.W, d.H)
}

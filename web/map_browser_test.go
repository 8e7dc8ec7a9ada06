package web_test

import (
	"bytes"
	"context"
	"image/png"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/targets"
	"github.com/allinx/hopprobe/web"
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
	// Scale and OffX, OffY map the map's coordinates to the window's
	// (the SVG is scaled to its frame); FrameW and FrameH are the room
	// the page gives it, InnerW and InnerH the window, ScrollW and
	// ScrollH the page.
	Scale, OffX, OffY, FrameW, FrameH, InnerW, InnerH, ScrollW, ScrollH float64
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
  const m = svg.getScreenCTM(), frame = svg.getBoundingClientRect();
  return {W: svg.viewBox.baseVal.width, H: svg.viewBox.baseVal.height, Nodes: nodes, Groups: groups, Edges: edges,
    Scale: m.a, OffX: m.e, OffY: m.f, FrameW: frame.width, FrameH: frame.height,
    InnerW: window.innerWidth, InnerH: window.innerHeight,
    ScrollW: document.documentElement.scrollWidth, ScrollH: document.documentElement.scrollHeight};
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
	srv := httptest.NewServer(handlerFor(paths))
	t.Cleanup(srv.Close)
	d := openMap(t, ctx, srv.URL, 1920, 1080, "etcdnew")
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking the screenshot: %v", err)
	}
	services := 0
	var g web.Graph
	for _, n := range d.Nodes {
		if n.Kind == "service" {
			services++
		}
		for _, tb := range n.Texts {
			if tb.X < 0 || tb.Y < 0 || tb.X+tb.W > n.W || tb.Y+tb.H > n.H {
				t.Errorf("%s: a label (%.0f×%.0f at %.0f,%.0f) spills out of its %.0f×%.0f box", n.ID, tb.W, tb.H, tb.X, tb.Y, n.W, n.H)
			}
		}
		g.Nodes = append(g.Nodes, web.GraphNode{ID: n.ID, Kind: n.Kind, Group: n.Group, Label: n.Label, Box: web.Box{X: n.X, Y: n.Y, W: n.W, H: n.H}})
	}
	if services != 75 || len(d.Edges) == 0 || len(d.Groups) < 3 {
		t.Fatalf("drew %d services, %d edges, %d groups; want 75 services, edges and the namespaces' frames", services, len(d.Edges), len(d.Groups))
	}
	for _, gr := range d.Groups {
		g.Groups = append(g.Groups, web.GraphGroup{Name: gr.Name, Box: web.Box{X: gr.X, Y: gr.Y, W: gr.W, H: gr.H}})
	}
	// Boxes, tiers, frames (LayoutProblems on what was drawn, edges
	// apart: they are checked point by point below).
	for _, p := range web.LayoutProblems(g) {
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
	if b := img.Bounds(); float64(b.Dx()) < d.OffX+d.Scale*d.W-1 || float64(b.Dy()) < d.OffY+d.Scale*d.H-1 {
		t.Errorf("the screenshot is %v, smaller than the map (%.0f×%.0f at scale %.2f)", b, d.W, d.H, d.Scale)
	}
	// Each box shows its colour (pending: #eef0f3) just inside its left
	// border, where no text is: nothing is drawn over a box.
	for _, n := range g.Nodes {
		x, y := int(d.OffX+d.Scale*(n.X+5)), int(d.OffY+d.Scale*(n.Y+n.H/2))
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

// openMap opens the map in a window of w×h pixels and reads it back once
// node is drawn.
func openMap(t *testing.T, ctx context.Context, url string, w, h int64, node string) drawn {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatalf("a %d×%d window: %v", w, h, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url+"/map")); err != nil {
		t.Fatalf("opening the map: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.WaitVisible(chromedp.CSS(`g[data-node="`+node+`"]`))); err != nil {
		t.Fatalf("the map never drew %s: %v", node, err)
	}
	d, err := chromedp.Run(ctx, chromedp.Evaluate[drawn](readMap))
	if err != nil {
		t.Fatalf("reading the map back: %v", err)
	}
	return d
}

// The shipped topology's map fits a 1,280×800 laptop and a 1,920×1,080
// wall screen without scrolling, drawn as large as the window allows
// (it fills the frame's width or its height, and uses at least half of
// the other), its 12 px labels drawn at 6.5 px or more on the laptop
// (0.55 of their size: the longest service names set the boxes' width)
// and 9 px or more on the wall; on a 390×844 phone it still fits, at a
// quarter of its size, for pinch-zooming. Pointing at a store lights every link into it
// and the services at their other ends, and fades the rest, so that who
// uses futuresnewredis can be told before it turns red.
func TestMapFitsTheScreenAndTracesEveryLink(t *testing.T) {
	paths, err := targets.Expand(testkit.Allinx(t), "cluster")
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Headless(t, "the map on laptop, wall and phone screens")
	srv := httptest.NewServer(handlerFor(paths))
	t.Cleanup(srv.Close)
	for _, sc := range []struct {
		name     string
		w, h     int64
		minLabel float64 // px, of a 12 px label
	}{{"laptop", 1280, 800, 6.5}, {"wall", 1920, 1080, 9}, {"phone", 390, 844, 0}} {
		d := openMap(t, ctx, srv.URL, sc.w, sc.h, "futuresnewredis")
		drawnW, drawnH := d.Scale*d.W, d.Scale*d.H
		t.Logf("%s %d×%d: map %.0f×%.0f at scale %.2f, drawn %.0f×%.0f in a %.0f×%.0f frame", sc.name, sc.w, sc.h, d.W, d.H, d.Scale, drawnW, drawnH, d.FrameW, d.FrameH)
		if d.ScrollW > d.InnerW || d.ScrollH > d.InnerH {
			t.Errorf("%s: the page scrolls: %.0f×%.0f in a %.0f×%.0f window", sc.name, d.ScrollW, d.ScrollH, d.InnerW, d.InnerH)
		}
		if drawnW > d.FrameW+1 || drawnH > d.FrameH+1 {
			t.Errorf("%s: the map (%.0f×%.0f) runs past its frame (%.0f×%.0f)", sc.name, drawnW, drawnH, d.FrameW, d.FrameH)
		}
		if fill := max(drawnW/d.FrameW, drawnH/d.FrameH); fill < 0.98 {
			t.Errorf("%s: the map fills %.0f%% of its frame's width or height at most: it is drawn smaller than the window allows", sc.name, 100*fill)
		}
		if other := min(drawnW/d.FrameW, drawnH/d.FrameH); sc.name != "phone" && other < 0.5 {
			t.Errorf("%s: the map uses %.0f%% of the frame's other side: the grid does not fit the screen's shape", sc.name, 100*other)
		}
		if label := 12 * d.Scale; label < sc.minLabel {
			t.Errorf("%s: labels are drawn %.1f px high, under %.1f px", sc.name, label, sc.minLabel)
		}
	}

	// Tracing, on the laptop screen.
	openMap(t, ctx, srv.URL, 1280, 800, "futuresnewredis")
	type lit struct {
		Edges, LitEdges, Nodes []string
		Faded, Full, Total     int
	}
	const point = `(() => {
  const g = document.querySelector('g[data-node="futuresnewredis"]');
  g.dispatchEvent(new MouseEvent('mouseenter'));
  const svg = document.getElementById('map');
  const edges = [...svg.querySelectorAll('path.edge')];
  return {
    Edges: edges.filter(p => p.dataset.target === 'futuresnewredis' || p.dataset.source === 'futuresnewredis').map(p => p.dataset.source),
    LitEdges: edges.filter(p => p.classList.contains('lit')).map(p => p.dataset.source),
    Nodes: [...svg.querySelectorAll('g[data-node].lit')].map(n => n.dataset.node),
    Faded: edges.filter(p => getComputedStyle(p).opacity < 0.5).length,
    Full: edges.filter(p => getComputedStyle(p).opacity == 1).length, Total: edges.length};
})()`
	l, err := chromedp.Run(ctx, chromedp.Evaluate[lit](point))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Edges) == 0 || !slices.Equal(l.Edges, l.LitEdges) || l.Full != len(l.Edges) {
		t.Errorf("pointing at futuresnewredis lit %v (%d drawn in full), want exactly its links %v", l.LitEdges, l.Full, l.Edges)
	}
	if l.Faded != l.Total-len(l.Edges) {
		t.Errorf("pointing at futuresnewredis faded %d of the %d links, want every one but its %d", l.Faded, l.Total, len(l.Edges))
	}
	for _, src := range l.Edges {
		if !slices.Contains(l.Nodes, src) {
			t.Errorf("%s uses futuresnewredis but is not lit (lit: %v)", src, l.Nodes)
		}
	}
	t.Logf("futuresnewredis is used by %v", l.Edges)
}

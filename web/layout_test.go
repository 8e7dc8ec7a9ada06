package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
	"github.com/allinx/hopprobe/web"
)

func graphOf(t *testing.T, paths []*targets.Path) web.Graph {
	t.Helper()
	st := make([]status.PathStatus, len(paths))
	for i, p := range paths {
		st[i] = status.Pending(p)
	}
	return web.GraphOf(paths, st)
}

// The map's layout, checked as geometry for the shipped topology and a
// generated one of 75 services: no two boxes overlap, no edge crosses a
// box, the tiers run top to bottom as the documents draw them, and each
// service sits in its namespace's frame. The browser test in
// internal/cli checks what Chromium draws from it.
func TestMapLayoutKeepsEdgesOffBoxes(t *testing.T) {
	for name, cfg := range map[string]func() []*targets.Path{
		"shipped": func() []*targets.Path {
			p, err := targets.Expand(testkit.Allinx(t), "cluster")
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		"generated 75 services": func() []*targets.Path {
			p, err := targets.Expand(testkit.Generated(t, 75), "cluster")
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := graphOf(t, cfg())
			if problems := web.LayoutProblems(g); len(problems) > 0 {
				for _, p := range problems {
					t.Error(p)
				}
			}
			services := 0
			for _, n := range g.Nodes {
				if n.Kind == "service" {
					services++
				}
			}
			t.Logf("%d components (%d services), %d links, %d groups, %.0f×%.0f px", len(g.Nodes), services, len(g.Edges), len(g.Groups), g.Width, g.Height)
		})
	}
}

// LayoutProblems finds what it must: a box over another, an edge through a
// box, a store above a service.
func TestLayoutProblemsSeesABrokenLayout(t *testing.T) {
	paths, err := targets.Expand(testkit.Generated(t, 12), "cluster")
	if err != nil {
		t.Fatal(err)
	}
	for what, breakIt := range map[string]func(g *web.Graph){
		"overlap": func(g *web.Graph) { g.Nodes[1].Box = g.Nodes[0].Box },
		"through": func(g *web.Graph) {
			b := g.Nodes[len(g.Nodes)/2].Box
			g.Edges[0].Points = append(g.Edges[0].Points[:1:1], [2]float64{b.X + b.W/2, b.Y - 5}, [2]float64{b.X + b.W/2, b.Y + b.H + 5}, g.Edges[0].Points[len(g.Edges[0].Points)-1])
		},
		"tiers": func(g *web.Graph) {
			for i, n := range g.Nodes {
				if n.Kind == "store" {
					g.Nodes[i].Y = 0
				}
			}
		},
	} {
		g := graphOf(t, paths)
		if p := web.LayoutProblems(g); len(p) != 0 {
			t.Fatalf("the unbroken layout already has problems: %v", p)
		}
		breakIt(&g)
		if p := web.LayoutProblems(g); len(p) == 0 {
			t.Errorf("LayoutProblems missed a broken layout (%s)", what)
		} else {
			t.Logf("%s: %s", what, fmt.Sprint(p[0]))
		}
	}
}

// ?fit=WxH lays the map out for that screen: a phone upright gets a
// taller grid than a wall screen; nonsense sizes are refused.
func TestTopologyFitsTheScreenAsked(t *testing.T) {
	paths, err := targets.Expand(testkit.Allinx(t), "cluster")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handlerFor(paths))
	defer srv.Close()
	size := func(q string) (w, h float64, code int) {
		resp, err := http.Get(srv.URL + "/api/v1/topology" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var g web.Graph
		_ = json.NewDecoder(resp.Body).Decode(&g)
		return g.Width, g.Height, resp.StatusCode
	}
	ww, wh, _ := size("?fit=1920x1080")
	pw, ph, _ := size("?fit=390x844")
	if ph/pw <= wh/ww {
		t.Errorf("a phone got a %.0f×%.0f map, a wall screen %.0f×%.0f: the phone's is not taller for its width", pw, ph, ww, wh)
	}
	for _, bad := range []string{"?fit=10x10", "?fit=1280", "?fit=axb", "?fit=99999x800"} {
		if _, _, code := size(bad); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, code)
		}
	}
}

package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
	"github.com/allinx/hopprobe/web"
	"go.uber.org/goleak"
)

// The store kinds come from the probes registry, as in the programs.
func TestMain(m *testing.M) {
	probes.RegisterKinds()
	goleak.VerifyTestMain(m)
}

// handlerFor serves paths, none walked yet, with their metrics.
func handlerFor(paths []*targets.Path) http.Handler {
	return web.Handler(status.NewBoard(paths), exporter.New(paths).MetricsHandler())
}

func TestHandlerServesStatusAndReadiness(t *testing.T) {
	p, r := testkit.NodePortWalk()
	b, e := status.NewBoard([]*targets.Path{p}), exporter.New([]*targets.Path{p})
	srv := httptest.NewServer(web.Handler(b, e.MetricsHandler()))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before the first walk: %d", code)
	}
	if w, ok := b.Observe(r); ok {
		e.Observe(r, w)
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after the first walk: %d", code)
	}
	_, body := get("/api/v1/paths?path=" + p.ID)
	var doc struct{ Paths []status.PathStatus }
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) != 1 || doc.Paths[0].FirstFailingHop != "node-b:31603" || doc.Paths[0].Hops[2].Verdict != status.VerdictSkipped {
		t.Fatalf("status: %s", body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, `hopprobe_hop_first_failing{hop="node-b:31603",path="nodeport/landry/landry-trans-web",vantage="cluster"} 1`) {
		t.Fatalf("/metrics lacks the walk:\n%s", body)
	}
	if _, body := get("/api/v1/paths?path=nope"); !strings.Contains(body, `"paths": []`) {
		t.Fatalf("unknown path filter: %s", body)
	}
}

func TestHopHealthPageIsServed(t *testing.T) {
	p, _ := testkit.NodePortWalk()
	srv := httptest.NewServer(handlerFor([]*targets.Path{p}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), "fetch('api/v1/paths')") {
		t.Fatalf("GET /: %d %s\n%.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	nope, err := http.Get(srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	nope.Body.Close()
	if nope.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /nope must be 404, got %d", nope.StatusCode)
	}
}

// A component is failed when any hop probing it failed, ranks follow the
// longest chain of documented links, and a component that is only
// skipped stays grey.
func TestGraphCombinesHopsIntoComponents(t *testing.T) {
	path := func(id string, nodes ...string) *targets.Path {
		p := &targets.Path{ID: id}
		for _, n := range nodes {
			p.Hops = append(p.Hops, targets.Hop{Name: n, Node: n, Kind: hop.KindHTTP})
		}
		return p
	}
	st := func(p *targets.Path, verdicts ...string) status.PathStatus {
		ps := status.Pending(p)
		for i, v := range verdicts {
			ps.Hops[i].Verdict = v
		}
		return ps
	}
	a, b := path("a", "edge", "apisix", "svc/x"), path("b", "edge", "apisix", "svc/y")
	g := web.GraphOf([]*targets.Path{a, b}, []status.PathStatus{st(a, "ok", "ok", "failed"), st(b, "ok", "skipped", "skipped")})
	got := map[string]string{}
	for _, n := range g.Nodes {
		got[n.ID] = fmt.Sprintf("%s@%d", n.Health, n.Rank)
	}
	want := map[string]string{"edge": "ok@0", "apisix": "ok@1", "svc/x": "failed@2", "svc/y": "skipped@2"}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %s, want %s", id, got[id], w)
		}
	}
}

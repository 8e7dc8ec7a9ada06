package exporter_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// The store kinds come from the probes registry, as in the programs.
func TestMain(m *testing.M) {
	probes.RegisterStoreKinds()
	goleak.VerifyTestMain(m)
}

// nodePortPath is a NodePort path over three nodes; the exporter is fed
// one walk in which node-b failed and node-c was skipped.
func nodePortWalk() (*targets.Path, scheduler.PathResult) {
	p := &targets.Path{ID: "nodeport/landry/landry-trans-web", Vantage: "cluster", Namespace: "landry", Service: "landry-trans-web",
		Hops: []targets.Hop{
			{Name: "node-a:31603", Node: "landry/landry-trans-web", Kind: hop.KindNodePort},
			{Name: "node-b:31603", Kind: hop.KindNodePort, Target: hop.Target{ExpectUnreachable: true}},
			{Name: "node-c:31603", Kind: hop.KindNodePort, Skip: "no address from this vantage"},
		}}
	now := time.Now()
	r := scheduler.PathResult{Path: p, Start: now, Duration: 30 * time.Millisecond, FirstFailing: 1, Hops: []scheduler.HopResult{
		{Result: hop.Result{Success: true, Start: now, Duration: 2 * time.Millisecond,
			Report: hop.Report{Phases: []hop.Phase{{Name: "connect", Duration: time.Millisecond}}, CertExpiry: now.Add(48 * time.Hour)}}},
		{Result: hop.Result{Start: now, Duration: 25 * time.Millisecond, Error: "cannot connect to 10.0.0.2:31603: connection refused"}},
		{Skipped: true, Result: hop.Result{Error: "no address from this vantage"}},
	}}
	return p, r
}

func TestObserveExportsEveryHopWithItsKind(t *testing.T) {
	p, r := nodePortWalk()
	e := exporter.New([]*targets.Path{p})
	if e.Ready() {
		t.Fatal("ready before any walk")
	}
	e.Observe(r)
	e.Observe(r)
	want := `
# HELP hopprobe_hop_first_failing 1 on the first failing hop of a broken path (the one to page about); absent on every other hop.
# TYPE hopprobe_hop_first_failing gauge
hopprobe_hop_first_failing{hop="node-b:31603",path="nodeport/landry/landry-trans-web",vantage="cluster"} 1
# HELP hopprobe_hop_success 1 if the hop answered as expected in the last walk of its path, 0 if not.
# TYPE hopprobe_hop_success gauge
hopprobe_hop_success{hop="node-a:31603",path="nodeport/landry/landry-trans-web",vantage="cluster"} 1
hopprobe_hop_success{hop="node-b:31603",path="nodeport/landry/landry-trans-web",vantage="cluster"} 0
# HELP hopprobe_hop_skipped 1 on a hop that cannot be reached from this vantage and is not probed (absent on probed hops).
# TYPE hopprobe_hop_skipped gauge
hopprobe_hop_skipped{hop="node-c:31603",path="nodeport/landry/landry-trans-web",vantage="cluster"} 1
# HELP hopprobe_hop_probes_total Hop results by outcome: success, failure, skipped, or not_probed (no probe slot came free in time; the hop's last verdict stands).
# TYPE hopprobe_hop_probes_total counter
hopprobe_hop_probes_total{hop="node-a:31603",path="nodeport/landry/landry-trans-web",result="success",vantage="cluster"} 2
hopprobe_hop_probes_total{hop="node-b:31603",path="nodeport/landry/landry-trans-web",result="failure",vantage="cluster"} 2
hopprobe_hop_probes_total{hop="node-c:31603",path="nodeport/landry/landry-trans-web",result="skipped",vantage="cluster"} 2
# HELP hopprobe_path_success 1 if no probed hop of the path failed in its last walk.
# TYPE hopprobe_path_success gauge
hopprobe_path_success{namespace="landry",path="nodeport/landry/landry-trans-web",service="landry-trans-web",vantage="cluster"} 0
`
	names := []string{"hopprobe_hop_first_failing", "hopprobe_hop_success", "hopprobe_hop_skipped", "hopprobe_hop_probes_total",
		"hopprobe_path_success"}
	if err := testutil.GatherAndCompare(e.Gatherer(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(e.Gatherer(), "hopprobe_tls_cert_expiry_timestamp_seconds"); n != 1 {
		t.Fatalf("%d certificate expiry series, want 1 (only node-a presented one)", n)
	}
	if !e.Ready() {
		t.Fatal("not ready after every path was walked")
	}
	exposed := `
# HELP hopprobe_hop_exposed 1 if a hop that must be unreachable from this vantage (a NodePort kept internal) answered: a security finding.
# TYPE hopprobe_hop_exposed gauge
hopprobe_hop_exposed{hop="node-b:31603",path="nodeport/landry/landry-trans-web",vantage="cluster"} 1
`
	if err := testutil.GatherAndCompare(e.Gatherer(), strings.NewReader(exposed), "hopprobe_hop_exposed"); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(e.Gatherer(), "hopprobe_hop_node_info"); n != 3 {
		t.Fatalf("%d hop node series, want one per hop (3)", n)
	}
}

func TestHandlerServesStatusAndReadiness(t *testing.T) {
	p, r := nodePortWalk()
	e := exporter.New([]*targets.Path{p})
	srv := httptest.NewServer(e.Handler())
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
	e.Observe(r)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after the first walk: %d", code)
	}
	_, body := get("/api/v1/paths?path=" + p.ID)
	var doc struct{ Paths []exporter.PathStatus }
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) != 1 || doc.Paths[0].FirstFailingHop != "node-b:31603" || doc.Paths[0].Hops[2].Verdict != exporter.VerdictSkipped {
		t.Fatalf("status: %s", body)
	}
	if _, body := get("/api/v1/paths?path=nope"); !strings.Contains(body, `"paths": []`) {
		t.Fatalf("unknown path filter: %s", body)
	}
}

// SetPaths on reload: unchanged paths keep their series, removed ones
// lose them, changed ones keep the series of the hops they keep, and a
// late walk of a removed or changed path is not recorded.
func TestSetPathsKeepsUnchangedAndDropsRemoved(t *testing.T) {
	p, r := nodePortWalk()
	other := &targets.Path{ID: "svc/landry/landry-ces-matchengine", Vantage: "cluster", Namespace: "landry", Service: "landry-ces-matchengine",
		Hops: []targets.Hop{{Name: "port-7316", Kind: hop.KindTCP, Node: "landry/landry-ces-matchengine"}}}
	otherWalk := scheduler.PathResult{Path: other, Success: true, FirstFailing: -1, Hops: []scheduler.HopResult{{Result: hop.Result{Success: true}}}}
	e := exporter.New([]*targets.Path{p, other})
	e.Observe(r)
	e.Observe(otherWalk)
	count := func(path string) int {
		mfs, _ := e.Gatherer().Gather()
		n := 0
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "path" && l.GetValue() == path {
						n++
					}
				}
			}
		}
		return n
	}
	keptBefore := count(p.ID)
	e.SetPaths([]*targets.Path{p}) // other removed
	if n := count(other.ID); n != 0 {
		t.Fatalf("%d series of the removed path remain", n)
	}
	if n := count(p.ID); n != keptBefore {
		t.Fatalf("the unchanged path had %d series, now %d", keptBefore, n)
	}
	e.Observe(otherWalk) // a walk that was in flight during the reload
	if n := count(other.ID); n != 0 {
		t.Fatalf("a late walk brought back %d series of a removed path", n)
	}
	if st := e.Statuses(); len(st) != 1 || st[0].ID != p.ID {
		t.Fatalf("status after reload: %+v", st)
	}
	// The same ID without the hop that broke it (the bad node left): the
	// hops it keeps keep their series, the verdict waits for the next walk.
	changed := *p
	changed.Hops = p.Hops[:1]
	e.SetPaths([]*targets.Path{&changed})
	kept := `
# HELP hopprobe_hop_probes_total Hop results by outcome: success, failure, skipped, or not_probed (no probe slot came free in time; the hop's last verdict stands).
# TYPE hopprobe_hop_probes_total counter
hopprobe_hop_probes_total{hop="node-a:31603",path="nodeport/landry/landry-trans-web",result="success",vantage="cluster"} 1
`
	if err := testutil.GatherAndCompare(e.Gatherer(), strings.NewReader(kept), "hopprobe_hop_probes_total"); err != nil {
		t.Fatalf("the hop the changed path keeps: %v", err)
	}
	if n, _ := testutil.GatherAndCount(e.Gatherer(), "hopprobe_path_success"); n != 0 {
		t.Fatalf("the path's verdict named a hop that is gone, yet %d path series remain", n)
	}
	if !e.Ready() {
		t.Fatal("readiness must not flap when paths change")
	}
	e.Observe(r) // the old generation's walk, in flight at the change
	if n, _ := testutil.GatherAndCount(e.Gatherer(), "hopprobe_hop_probes_total"); n != 1 {
		t.Fatalf("a stale walk of the old hops was recorded: %d series", n)
	}
}

// A reload that moves a hop's address keeps the path's series (the
// address is no label) and its status names the new address from the
// first walk after it: each walk's status starts from the path's own
// pending status, which the reload rebuilds.
func TestStatusNamesTheTargetAReloadMovedTo(t *testing.T) {
	p, r := nodePortWalk()
	p.Hops[0].Target.Address = "10.0.0.1:31603"
	e := exporter.New([]*targets.Path{p})
	e.Observe(r)
	if got := e.Statuses()[0].Hops[0].Target; got != "10.0.0.1:31603" {
		t.Fatalf("target before the reload: %q", got)
	}
	moved := *p
	moved.Hops = slices.Clone(p.Hops)
	moved.Hops[0].Target.Address = "10.0.0.9:31603"
	e.SetPaths([]*targets.Path{&moved})
	walk := r
	walk.Path = &moved
	e.Observe(walk)
	st := e.Statuses()[0]
	if got := st.Hops[0].Target; got != "10.0.0.9:31603" {
		t.Fatalf("target after the reload: %q", got)
	}
	if st.FirstFailingHop != "node-b:31603" || st.Hops[2].Verdict != exporter.VerdictSkipped {
		t.Fatalf("status after the reload: %+v", st)
	}
}

// A pod that joins a Service adds a hop to a failing path: the failing
// hop stays the first failing one, the path stays broken, the new hop is
// pending.
func TestSetPathsCarriesTheVerdictWhenAHopJoins(t *testing.T) {
	p, r := nodePortWalk()
	e := exporter.New([]*targets.Path{p})
	e.Observe(r)
	grown := *p
	grown.Hops = append([]targets.Hop{{Name: "node-0:31603", Kind: hop.KindNodePort}}, p.Hops...)
	e.SetPaths([]*targets.Path{&grown})
	want := `
# HELP hopprobe_hop_first_failing 1 on the first failing hop of a broken path (the one to page about); absent on every other hop.
# TYPE hopprobe_hop_first_failing gauge
hopprobe_hop_first_failing{hop="node-b:31603",path="nodeport/landry/landry-trans-web",vantage="cluster"} 1
# HELP hopprobe_hop_node_info Always 1: what a hop is (kind, namespace, the component it probes, its position 00, 01, … in its path), for joins on path, hop and vantage.
# TYPE hopprobe_hop_node_info gauge
hopprobe_hop_node_info{hop="node-0:31603",kind="nodeport",namespace="landry",node="",path="nodeport/landry/landry-trans-web",position="00",vantage="cluster"} 1
hopprobe_hop_node_info{hop="node-a:31603",kind="nodeport",namespace="landry",node="landry/landry-trans-web",path="nodeport/landry/landry-trans-web",position="01",vantage="cluster"} 1
hopprobe_hop_node_info{hop="node-b:31603",kind="nodeport",namespace="landry",node="",path="nodeport/landry/landry-trans-web",position="02",vantage="cluster"} 1
hopprobe_hop_node_info{hop="node-c:31603",kind="nodeport",namespace="landry",node="",path="nodeport/landry/landry-trans-web",position="03",vantage="cluster"} 1
# HELP hopprobe_path_success 1 if no probed hop of the path failed in its last walk.
# TYPE hopprobe_path_success gauge
hopprobe_path_success{namespace="landry",path="nodeport/landry/landry-trans-web",service="landry-trans-web",vantage="cluster"} 0
`
	if err := testutil.GatherAndCompare(e.Gatherer(), strings.NewReader(want),
		"hopprobe_hop_first_failing", "hopprobe_hop_node_info", "hopprobe_path_success"); err != nil {
		t.Fatal(err)
	}
}

func TestHopHealthPageIsServed(t *testing.T) {
	p, _ := nodePortWalk()
	srv := httptest.NewServer(exporter.New([]*targets.Path{p}).Handler())
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
	st := func(p *targets.Path, verdicts ...string) exporter.PathStatus {
		ps := exporter.Pending(p)
		for i, v := range verdicts {
			ps.Hops[i].Verdict = v
		}
		return ps
	}
	a, b := path("a", "edge", "apisix", "svc/x"), path("b", "edge", "apisix", "svc/y")
	g := exporter.GraphOf([]*targets.Path{a, b}, []exporter.PathStatus{st(a, "ok", "ok", "failed"), st(b, "ok", "skipped", "skipped")})
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

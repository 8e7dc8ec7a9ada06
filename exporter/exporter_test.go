package exporter_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// The store kinds come from the probes registry, as in the programs.
func TestMain(m *testing.M) {
	probes.RegisterKinds()
	goleak.VerifyTestMain(m)
}

// observe feeds a walk as the runner does, with what the board made of
// it.
func observe(e *exporter.Exporter, r scheduler.PathResult) {
	e.Observe(r, status.Walk{Status: status.StatusOf(r)})
}

func TestObserveExportsEveryHopWithItsKind(t *testing.T) {
	p, r := testkit.NodePortWalk()
	e := exporter.New([]*targets.Path{p})
	observe(e, r)
	observe(e, r)
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

// SetPaths on reload: unchanged paths keep their series, removed ones
// lose them, changed ones keep the series of the hops they keep, and a
// late walk of a removed or changed path is not recorded.
func TestSetPathsKeepsUnchangedAndDropsRemoved(t *testing.T) {
	p, r := testkit.NodePortWalk()
	other, otherWalk := testkit.ServiceWalk()
	e := exporter.New([]*targets.Path{p, other})
	observe(e, r)
	observe(e, otherWalk)
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
	observe(e, otherWalk) // a walk that was in flight during the reload
	if n := count(other.ID); n != 0 {
		t.Fatalf("a late walk brought back %d series of a removed path", n)
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
	observe(e, r) // a walk of the path before the change, in flight at it
	if n, _ := testutil.GatherAndCount(e.Gatherer(), "hopprobe_hop_probes_total"); n != 1 {
		t.Fatalf("a stale walk of the old hops was recorded: %d series", n)
	}
}

// A pod that joins a Service adds a hop to a failing path: the failing
// hop stays the first failing one, the path stays broken, the new hop is
// pending.
func TestSetPathsCarriesTheVerdictWhenAHopJoins(t *testing.T) {
	p, r := testkit.NodePortWalk()
	e := exporter.New([]*targets.Path{p})
	observe(e, r)
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

// An edge component's CloudFront POP is one series per component and
// vantage, from the last answer that named one: kept while the
// component fails (the site's alert still says where its users enter),
// replaced by the next POP named, and never a value of another shape
// (the header is the peer's).
func TestTheEdgePOPIsKeptPerComponent(t *testing.T) {
	paths := []*targets.Path{}
	for _, id := range []string{"api.example.test/*", "www.example.test/*"} {
		paths = append(paths, &targets.Path{ID: id, Vantage: "external", Hops: []targets.Hop{
			{Name: "cloudfront", Node: "cloudfront", Kind: hop.KindHTTP, Role: targets.RoleEdge},
			{Name: "service", Node: "ns/app", Kind: hop.KindHTTP, Role: targets.RoleService}}})
	}
	e := exporter.New(paths)
	walk := func(p *targets.Path, ok bool, pop string) {
		r := scheduler.PathResult{Path: p, Success: ok, FirstFailing: -1, Hops: make([]scheduler.HopResult, 2)}
		r.Hops[0].Success, r.Hops[1].Success = ok, ok
		if pop != "" {
			r.Hops[0].Details = map[string]string{"header.x-amz-cf-pop": pop}
		}
		if !ok {
			r.FirstFailing = 0
		}
		observe(e, r)
	}
	want := func(pop string) {
		t.Helper()
		exp := ""
		if pop != "" {
			exp = `
# HELP hopprobe_edge_pop_info Always 1: the CloudFront point of presence (X-Amz-Cf-Pop) of an edge component's last answer that named one, from this vantage: where this site's users enter. Kept while the component fails.
# TYPE hopprobe_edge_pop_info gauge
hopprobe_edge_pop_info{node="cloudfront",pop="` + pop + `",vantage="external"} 1
`
		}
		if err := testutil.GatherAndCompare(e.Gatherer(), strings.NewReader(exp), "hopprobe_edge_pop_info"); err != nil {
			t.Fatal(err)
		}
	}
	want("")
	walk(paths[0], true, "NRT57-P3")
	walk(paths[1], true, "NRT57-P3")
	want("NRT57-P3")
	walk(paths[0], false, "")
	want("NRT57-P3")
	walk(paths[1], true, `NRT57-P3",evil="1`)
	walk(paths[1], true, strings.Repeat("A", 300))
	want("NRT57-P3")
	walk(paths[0], true, "SIN2-P1")
	want("SIN2-P1")
	e.SetPaths(nil)
	want("")
}

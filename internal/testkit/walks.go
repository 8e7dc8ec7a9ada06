package testkit

import (
	"time"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// NodePortWalk is a NodePort path over three nodes and one walk of it
// in which node-a answered (with a certificate), node-b, which must not
// open, failed, and node-c was skipped.
func NodePortWalk() (*targets.Path, scheduler.PathResult) {
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

// ServiceWalk is a one-hop TCP path to a Service and a walk of it that
// passed.
func ServiceWalk() (*targets.Path, scheduler.PathResult) {
	p := &targets.Path{ID: "svc/landry/landry-ces-matchengine", Vantage: "cluster", Namespace: "landry", Service: "landry-ces-matchengine",
		Hops: []targets.Hop{{Name: "port-7316", Kind: hop.KindTCP, Node: "landry/landry-ces-matchengine"}}}
	return p, scheduler.PathResult{Path: p, Success: true, FirstFailing: -1, Hops: []scheduler.HopResult{{Result: hop.Result{Success: true}}}}
}

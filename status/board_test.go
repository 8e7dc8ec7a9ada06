package status_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
	"go.uber.org/goleak"
)

// The store kinds come from the probes registry, as in the programs.
func TestMain(m *testing.M) {
	probes.RegisterKinds()
	goleak.VerifyTestMain(m)
}

// A reload that moves a hop's address names the new address at once,
// and each walk after it starts from the path's own pending status,
// which the reload rebuilt.
func TestStatusNamesTheTargetAReloadMovedTo(t *testing.T) {
	p, r := testkit.NodePortWalk()
	p.Hops[0].Target.Address = "10.0.0.1:31603"
	b := status.NewBoard([]*targets.Path{p})
	b.Observe(r)
	if got := b.Statuses()[0].Hops[0].Target; got != "10.0.0.1:31603" {
		t.Fatalf("target before the reload: %q", got)
	}
	moved := *p
	moved.Hops = slices.Clone(p.Hops)
	moved.Hops[0].Target.Address = "10.0.0.9:31603"
	b.SetPaths([]*targets.Path{&moved})
	if got := b.Statuses()[0].Hops[0].Target; got != "10.0.0.9:31603" {
		t.Fatalf("target right after the reload, before a walk: %q", got)
	}
	walk := r
	walk.Path = &moved
	b.Observe(walk)
	st := b.Statuses()[0]
	if got := st.Hops[0].Target; got != "10.0.0.9:31603" {
		t.Fatalf("target after the reload: %q", got)
	}
	if st.FirstFailingHop != "node-b:31603" || st.Hops[2].Verdict != status.VerdictSkipped {
		t.Fatalf("status after the reload: %+v", st)
	}
}

// A change is on the board when it is applied, not at the path's next
// walk: a removed path leaves, and a late walk of it is refused; a hop
// that joins is pending while the hops the path keeps keep their last
// verdict; the path stays broken while the hop that broke it is still
// there; readiness does not flap.
func TestBoardShowsAChangeWhenItIsApplied(t *testing.T) {
	p, r := testkit.NodePortWalk()
	other, otherWalk := testkit.ServiceWalk()
	b := status.NewBoard([]*targets.Path{p, other})
	if b.Ready() {
		t.Fatal("ready before any walk")
	}
	b.Observe(r)
	b.Observe(otherWalk)
	if !b.Ready() {
		t.Fatal("not ready after every path was walked")
	}

	grown := *p
	grown.Hops = append([]targets.Hop{{Name: "node-0:31603", Kind: hop.KindNodePort}}, p.Hops...)
	b.SetPaths([]*targets.Path{&grown})
	st := b.Statuses()
	if len(st) != 1 || st[0].ID != p.ID {
		t.Fatalf("after the change the board lists %d paths: %+v", len(st), st)
	}
	if _, ok := b.History(other.ID); ok {
		t.Error("the removed path's history is still served")
	}
	got := map[string]string{}
	for _, h := range st[0].Hops {
		got[h.Name] = h.Verdict
	}
	want := map[string]string{"node-0:31603": status.VerdictPending, "node-a:31603": status.VerdictOK, "node-b:31603": status.VerdictFailed,
		"node-c:31603": status.VerdictSkipped}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("hop %s is %q right after the change, want %q", name, got[name], v)
		}
	}
	if st[0].Verdict != status.VerdictFailed || st[0].FirstFailingHop != "node-b:31603" {
		t.Errorf("the path is %s at %q after a hop joined, want failed at node-b", st[0].Verdict, st[0].FirstFailingHop)
	}
	if _, ok := b.Observe(otherWalk); ok {
		t.Error("a walk of the removed path, in flight at the change, was taken")
	}
	if _, ok := b.Observe(r); ok {
		t.Error("a walk of the path as it was before the change was taken")
	}

	// The hop that broke the path leaves: the path is pending until its
	// next walk.
	shrunk := grown
	shrunk.Hops = grown.Hops[:2]
	b.SetPaths([]*targets.Path{&shrunk})
	if st := b.Statuses()[0]; st.Verdict != status.VerdictPending || st.FirstFailingHop != "" {
		t.Errorf("the hop that broke the path left, yet it is %s at %q", st.Verdict, st.FirstFailingHop)
	}
	if !b.Ready() {
		t.Fatal("readiness must not flap when paths change")
	}
}

// Liveness is progress: with no walk finished for the stall limit, Live
// says the scheduler is wedged.
func TestLivenessMeansWalks(t *testing.T) {
	p := &targets.Path{ID: "svc/ns/app", Interval: time.Second, Hops: []targets.Hop{{Name: "port-8080", Kind: hop.KindHTTP}}}
	b := status.NewBoard([]*targets.Path{p})
	now := time.Now()
	if err := b.Live(now); err != nil {
		t.Fatalf("not live at start: %v", err)
	}
	if err := b.Live(now.Add(4 * time.Second)); err != nil {
		t.Fatalf("not live within 5 intervals: %v", err)
	}
	err := b.Live(now.Add(6 * time.Second))
	if err == nil || !strings.Contains(err.Error(), "the scheduler is wedged") {
		t.Fatalf("live after 6 intervals without a walk: %v", err)
	}
	b.Observe(scheduler.PathResult{Path: p, Success: true, FirstFailing: -1, Hops: []scheduler.HopResult{{Result: hop.Result{Success: true}}}})
	if err := b.Live(time.Now()); err != nil {
		t.Fatalf("a walk did not count as progress: %v", err)
	}
	b.SetStallIntervals(0)
	if err := b.Live(now.Add(time.Hour)); err != nil {
		t.Fatalf("the check is off, yet: %v", err)
	}
}

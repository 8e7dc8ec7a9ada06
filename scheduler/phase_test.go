package scheduler_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// Two replicas at phases 0 and ½ walk a path half an interval apart,
// and a replica whose phase changes (another one came or went) moves
// its next start at once, not at the end of the old interval. The
// interval is an hour so that "not yet" is never a matter of timing:
// the wrong phase puts the next walk 30 minutes away.
func TestReplicasWalkAtTheirPhase(t *testing.T) {
	srv, hits := counting(t, 200)
	p := &targets.Path{ID: "phased", Interval: time.Hour, Hops: []targets.Hop{httpHop("service", addr(srv))}}
	// The path's tick at phase 0 is two seconds ahead.
	clock := gridAt{start: time.Now(), wall: time.Unix(0, 0).Add(scheduler.Offset("phased", time.Hour) - 2*time.Second)}
	var walked atomic.Int64
	phase := &scheduler.Phase{}
	phase.Set(0.5)
	s := &scheduler.Scheduler{Walker: scheduler.NewWalker(2, probes.Run), Paths: []*targets.Path{p}, Clock: clock, Phase: phase,
		OnResult: func(scheduler.PathResult) { walked.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	time.Sleep(300 * time.Millisecond)
	if n := hits.Load(); n != 0 {
		t.Fatalf("the replica at phase ½ walked %d times at phase 0's tick", n)
	}
	// Moving to phase 0 brings the next walk to phase 0's tick, under
	// two seconds away, instead of leaving it 30 minutes out.
	phase.Set(0)
	for deadline := time.Now().Add(20 * time.Second); walked.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no walk 20 s after the phase moved to a tick two seconds ahead")
		}
	}
	if got := phase.Get(); got != 0 {
		t.Errorf("phase %v after Set(0)", got)
	}
	phase.Set(1.25)
	if got := phase.Get(); got != 0.25 {
		t.Errorf("Set(1.25) gave phase %v, want 0.25 (a share of one interval)", got)
	}
}

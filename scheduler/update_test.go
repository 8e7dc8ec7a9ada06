package scheduler_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// Paths are updated in place, by key. Across an update an unchanged path
// keeps its walk in flight, whose result still lands; a removed path's
// walk in flight is cancelled and reports nothing; a changed path's old
// walk is cancelled and the new version walked; a new path is walked.
// The prober here holds every probe until the test lets go, so that the
// walks are in flight when the update comes.
func TestUpdateKeepsUnchangedPathsInPlace(t *testing.T) {
	started, cancelled := make(chan string, 64), make(chan string, 64)
	release := make(chan struct{})
	prober := func(ctx context.Context, _ hop.Kind, tg *hop.Target, _ time.Duration) hop.Result {
		started <- tg.Address
		select {
		case <-release:
			return hop.Result{Success: true}
		case <-ctx.Done():
			cancelled <- tg.Address
			return hop.Result{Error: "cancelled"}
		}
	}
	path := func(id, address string) *targets.Path {
		return &targets.Path{ID: id, Interval: 100 * time.Millisecond, Hops: []targets.Hop{{Name: "h", Kind: hop.KindTCP, Timeout: time.Minute,
			Target: hop.Target{Address: address}}}}
	}
	keep, gone, before := path("keep", "keep:1"), path("gone", "gone:1"), path("changed", "changed:1")
	after, added := path("changed", "changed:2"), path("added", "added:1")
	var mu sync.Mutex
	results := map[*targets.Path]int{}
	s := &scheduler.Scheduler{Walker: scheduler.NewWalker(8, prober), Paths: []*targets.Path{keep, gone, before},
		OnResult: func(r scheduler.PathResult) {
			mu.Lock()
			defer mu.Unlock()
			results[r.Path]++
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	await := func(ch chan string, what string, want ...string) {
		t.Helper()
		need := map[string]bool{}
		for _, w := range want {
			need[w] = true
		}
		deadline := time.After(10 * time.Second)
		for len(need) > 0 {
			select {
			case a := <-ch:
				delete(need, a)
			case <-deadline:
				t.Fatalf("no %s of %v within 10s", what, need)
			}
		}
	}
	await(started, "probe start", "keep:1", "gone:1", "changed:1")
	s.Update([]*targets.Path{keep, after, added})
	await(cancelled, "cancellation", "gone:1", "changed:1")
	await(started, "probe start", "changed:2", "added:1")
	select {
	case a := <-cancelled:
		t.Fatalf("the update cancelled the walk of %s", a)
	default:
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		k, a, c := results[keep], results[added], results[after]
		mu.Unlock()
		if k > 0 && a > 0 && c > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("results after the update: keep %d, added %d, changed %d; want each walked", k, a, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for len(cancelled) > 0 {
		if a := <-cancelled; a == "keep:1" {
			t.Error("the update cancelled the unchanged path's walk")
		}
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if results[gone] != 0 || results[before] != 0 {
		t.Errorf("walks cancelled by the update reported: removed path %d, old version of the changed path %d", results[gone], results[before])
	}
}

package scheduler_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// steppedClock is the system's monotonic clock with a wall clock that
// the test steps.
type steppedClock struct {
	start time.Time
	step  atomic.Int64
}

func (c *steppedClock) Wall() time.Time {
	return time.Now().Round(0).Add(time.Duration(c.step.Load()))
}
func (c *steppedClock) Elapsed() time.Duration { return time.Since(c.start) }

// A wall clock stepped back by an hour does not stop the walks, and one
// stepped forward by a year does not make them burst.
func TestClockStepsNeitherStopNorBurstTheWalks(t *testing.T) {
	const interval = 50 * time.Millisecond
	var walks atomic.Int64
	clock := &steppedClock{start: time.Now()}
	s := &scheduler.Scheduler{Walker: scheduler.NewWalker(4, probes.Run), Clock: clock,
		Paths:    []*targets.Path{{ID: "p", Interval: interval, Hops: []targets.Hop{{Name: "x", Skip: "nothing to probe"}}}},
		OnResult: func(scheduler.PathResult) { walks.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	window := func(step time.Duration) int64 {
		clock.step.Add(int64(step))
		before := walks.Load()
		time.Sleep(20 * interval)
		return walks.Load() - before
	}
	for _, step := range []time.Duration{0, -time.Hour, 365 * 24 * time.Hour, -365 * 24 * time.Hour} {
		n := window(step)
		// 20 intervals: a stopped schedule walks ~0, a burst hundreds.
		if n < 5 || n > 22 {
			t.Errorf("after a wall step of %s: %d walks in 20 intervals", step, n)
		}
	}
}

// A peer that hangs holds at most its share of the probe slots: the
// other paths stay on schedule and healthy, and the hops that could get
// no slot are reported as not probed, never as failed.
func TestAHangingPeerTakesOnlyItsShareOfSlots(t *testing.T) {
	srv, _ := counting(t, 200)
	hang, err := peers.Hang()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hang.Stop)
	const interval = 200 * time.Millisecond
	var paths []*targets.Path
	for i := range 12 {
		h := httpHop("stuck", hang.Addr)
		h.Target.Path = fmt.Sprintf("/%d", i) // distinct probes, one peer
		h.Timeout = 180 * time.Millisecond
		paths = append(paths, &targets.Path{ID: fmt.Sprintf("stuck-%d", i), Interval: interval, Hops: []targets.Hop{h}})
	}
	for _, id := range []string{"a", "b", "c"} {
		h := httpHop("svc", addr(srv))
		h.Target.Path = "/" + id
		paths = append(paths, &targets.Path{ID: id, Interval: interval, Hops: []targets.Hop{h}})
	}
	var mu sync.Mutex
	healthy, unhealthy, notProbed, stuckFailed := 0, 0, 0, 0
	var badWalk string // the last bad walk of a healthy path, for the failure message
	s := &scheduler.Scheduler{Walker: scheduler.NewWalker(8, probes.Run), Paths: paths, OnResult: func(r scheduler.PathResult) {
		mu.Lock()
		defer mu.Unlock()
		h := r.Hops[0]
		switch {
		case len(r.Path.ID) == 1 && r.Success && !h.NotProbed:
			healthy++
		case len(r.Path.ID) == 1:
			unhealthy++
			badWalk = fmt.Sprintf("path %s: not probed %v, attempts %d, error %q", r.Path.ID, h.NotProbed, h.Attempts, h.Error)
		case h.NotProbed:
			notProbed++
			if r.FirstFailing >= 0 {
				t.Errorf("a hop that was not probed is the path's first failing hop")
			}
		case !h.Success:
			stuckFailed++
		}
	}}
	runFor(s, 2*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if unhealthy > 0 || healthy < 3*5 {
		t.Errorf("healthy paths: %d good walks, %d bad in 2s beside a hanging peer (last bad: %s)", healthy, unhealthy, badWalk)
	}
	if notProbed == 0 || stuckFailed == 0 {
		t.Errorf("hanging peer: %d hops not probed, %d failed; want both (2 slots of 8 for 12 paths)", notProbed, stuckFailed)
	}
}

// The shared-hop cache and the per-peer slots forget what is gone.
func TestCacheAndPeersForgetWhatIsGone(t *testing.T) {
	srv, _ := counting(t, 200)
	w := scheduler.NewWalker(16, probes.Run)
	for i := range 3000 {
		h := httpHop("pod", addr(srv))
		h.Skip = "" // probed
		h.Target.Path = fmt.Sprintf("/pod-%d", i)
		w.Walk(context.Background(), &targets.Path{ID: "p", Interval: time.Millisecond, Hops: []targets.Hop{h}})
	}
	if n := w.Cached(); n > 2100 {
		t.Errorf("the cache holds %d hops after 3000 one-off hops with a 1ms window", n)
	}
	if n := w.Peers(); n != 0 {
		t.Errorf("%d peers kept slots with no probe in flight", n)
	}
}

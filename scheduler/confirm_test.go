package scheduler_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// flaky answers 503 to its first `failures` requests, then 200.
func flaky(t *testing.T, failures int64) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= failures {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func confirmPath(address string, retries int, spacing time.Duration) *targets.Path {
	return &targets.Path{ID: "p", Interval: time.Minute, Retries: retries, RetrySpacing: spacing,
		Hops: []targets.Hop{httpHop("service", address)}}
}

// A hop that fails once and then answers is recovered, not failed: the
// path is healthy, and the result says how many attempts it took and
// what the first one saw.
func TestAFailureThatPassesOnRetryIsARecovery(t *testing.T) {
	srv, hits := flaky(t, 1)
	r := scheduler.NewWalker(4, probes.Run).Walk(context.Background(), confirmPath(addr(srv), 2, 10*time.Millisecond))
	h := r.Hops[0]
	if !r.Success || !h.Success || h.Attempts != 2 || !h.Recovered() {
		t.Fatalf("walk success %v, hop %+v: want a recovered hop after 2 attempts", r.Success, h)
	}
	if !strings.Contains(h.FirstError, "503") {
		t.Errorf("FirstError %q does not say what the first attempt saw", h.FirstError)
	}
	if hits.Load() != 2 {
		t.Errorf("the peer saw %d requests, want 2", hits.Load())
	}
}

// A hop that keeps failing is confirmed failed after 1 + retries
// attempts; with retries 0 it fails at once.
func TestAFailureIsConfirmedByItsRetries(t *testing.T) {
	for _, retries := range []int{0, 2} {
		srv, hits := flaky(t, 1000)
		r := scheduler.NewWalker(4, probes.Run).Walk(context.Background(), confirmPath(addr(srv), retries, 10*time.Millisecond))
		h := r.Hops[0]
		if r.Success || h.Success || h.Attempts != retries+1 || h.Recovered() || r.FirstFailing != 0 {
			t.Errorf("retries %d: walk success %v, hop %+v: want a failure after %d attempts", retries, r.Success, h, retries+1)
		}
		if hits.Load() != int64(retries+1) {
			t.Errorf("retries %d: the peer saw %d requests, want %d", retries, hits.Load(), retries+1)
		}
	}
}

// Retries end where another would not finish within the path's
// interval: a hop never holds its walk past the next one's start.
func TestRetriesStayWithinTheInterval(t *testing.T) {
	srv, hits := flaky(t, 1000)
	p := confirmPath(addr(srv), 5, 200*time.Millisecond)
	// Each retry needs its spacing and the hop's 1 s timeout; a 1.1 s
	// interval leaves room for none after the first attempt.
	p.Interval = 1100 * time.Millisecond
	r := scheduler.NewWalker(4, probes.Run).Walk(context.Background(), p)
	if h := r.Hops[0]; h.Attempts != 1 || hits.Load() != 1 {
		t.Errorf("%d attempts (%d requests) in a 1.1 s interval, want 1", h.Attempts, hits.Load())
	}
	// Cancellation ends a confirmation at once, between attempts too.
	p = confirmPath(addr(srv), 5, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	done := make(chan scheduler.PathResult)
	go func() { done <- scheduler.NewWalker(4, probes.Run).Walk(ctx, p) }()
	select {
	case r := <-done:
		if r.Success {
			t.Error("a cancelled confirmation reported success")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a confirmation waiting a minute between retries did not end on cancellation")
	}
}

// A broken path is walked at its broken interval until it recovers; a
// healthy one, and the recovered one, only at their interval. Counts in
// a window, not times: under load there are fewer walks, never more.
func TestABrokenPathIsWalkedMoreOftenUntilItRecovers(t *testing.T) {
	bad, badHits := flaky(t, 1000)
	good, goodHits := counting(t, 200)
	mk := func(id, address string) *targets.Path {
		return &targets.Path{ID: id, Interval: time.Hour, BrokenInterval: 100 * time.Millisecond, Hops: []targets.Hop{httpHop("service", address)}}
	}
	var mu sync.Mutex
	results := map[string]int{}
	s := &scheduler.Scheduler{Walker: scheduler.NewWalker(4, probes.Run), Paths: []*targets.Path{mk("broken", addr(bad)), mk("healthy", addr(good))},
		OnResult: func(r scheduler.PathResult) { mu.Lock(); results[r.Path.ID]++; mu.Unlock() },
		// The first walks could be an hour away: a wall clock that puts
		// the broken path's grid tick a millisecond ahead.
		Clock: gridAt{start: time.Now(), wall: time.Unix(0, 0).Add(scheduler.Offset("broken", time.Hour) - time.Millisecond)}}
	runFor(s, 2*time.Second)
	// One walk on the grid, then one every 100 ms while broken: about
	// 20 in 2 s unloaded; at least 4 on three-times-oversubscribed cores.
	if n := badHits.Load(); n < 4 {
		t.Errorf("the broken path was walked %d times in 2 s with a 100 ms broken interval", n)
	}
	if n := goodHits.Load(); n > 1 {
		t.Errorf("the healthy path was walked %d times in 2 s with a 1 h interval, want at most 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if int64(results["broken"]) != badHits.Load() {
		t.Errorf("%d results for %d walks of the broken path", results["broken"], badHits.Load())
	}
}

// A path that recovers goes back to its interval: three failures, a
// pass, and no walk after it.
func TestARecoveredPathGoesBackToItsInterval(t *testing.T) {
	healing, hits := flaky(t, 3)
	p := &targets.Path{ID: "healing", Interval: time.Hour, BrokenInterval: 100 * time.Millisecond, Hops: []targets.Hop{httpHop("service", addr(healing))}}
	s := &scheduler.Scheduler{Walker: scheduler.NewWalker(4, probes.Run), Paths: []*targets.Path{p}, OnResult: func(scheduler.PathResult) {},
		Clock: gridAt{start: time.Now(), wall: time.Unix(0, 0).Add(scheduler.Offset("healing", time.Hour) - time.Millisecond)}}
	runFor(s, 2*time.Second)
	// 4 unloaded; fewer on oversubscribed cores, never more.
	if n := hits.Load(); n < 2 || n > 4 {
		t.Errorf("the path (3 failures, then answers) was walked %d times in 2 s, want 4 and then none", n)
	}
}

// gridAt is a wall clock that reads wall at the start and runs on.
type gridAt struct {
	start time.Time
	wall  time.Time
}

func (c gridAt) Wall() time.Time        { return c.wall.Add(time.Since(c.start)) }
func (c gridAt) Elapsed() time.Duration { return time.Since(c.start) }

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

	"go.uber.org/goleak"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func httpHop(name, address string) targets.Hop {
	return targets.Hop{Name: name, Kind: hop.KindHTTP, Timeout: time.Second,
		Target: hop.Target{Address: address, Host: "svc.test", Scheme: "http", Path: "/"}}
}

func counting(t *testing.T, status int) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// runFor runs s for d.
func runFor(s *scheduler.Scheduler, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s.Run(ctx)
}

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func TestSharedHopIsProbedOncePerInterval(t *testing.T) {
	shared, hits := counting(t, 200)
	a := &targets.Path{ID: "a", Interval: time.Minute, Hops: []targets.Hop{httpHop("redis", addr(shared))}}
	b := &targets.Path{ID: "b", Interval: time.Minute, Hops: []targets.Hop{httpHop("redis", addr(shared))}}
	w := scheduler.NewWalker(4, probes.Run)
	ra := w.Walk(context.Background(), a)
	rb := w.Walk(context.Background(), b)
	if !ra.Success || !rb.Success {
		t.Fatalf("walks failed: %+v %+v", ra.Hops, rb.Hops)
	}
	if hits.Load() != 1 {
		t.Fatalf("shared hop probed %d times, want 1", hits.Load())
	}
	if !rb.Hops[0].Shared {
		t.Error("second path's result not marked shared")
	}
	// A path with a short interval probes afresh once its interval is over.
	c := &targets.Path{ID: "c", Interval: 20 * time.Millisecond, Hops: []targets.Hop{httpHop("redis", addr(shared))}}
	w2 := scheduler.NewWalker(4, probes.Run)
	w2.Walk(context.Background(), c)
	time.Sleep(30 * time.Millisecond)
	w2.Walk(context.Background(), c)
	if hits.Load() != 3 {
		t.Fatalf("after the interval the hop must be probed again: %d hits, want 3", hits.Load())
	}
}

func TestFirstFailingHopFollowsTheChainDown(t *testing.T) {
	ok, _ := counting(t, 200)
	bad, _ := counting(t, 502)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := addr(dead)
	dead.Close()
	// edge → alb → apisix → service; the edge and the ALB fail, APISIX
	// answers: the ALB is the first failing hop, not the edge.
	p := &targets.Path{ID: "p", Interval: time.Minute, Hops: []targets.Hop{
		httpHop("edge", addr(bad)), httpHop("alb", deadAddr), httpHop("apisix", addr(ok)), httpHop("service", addr(ok)),
	}}
	p.Hops[0].DependsOn = []int{1}
	p.Hops[1].DependsOn = []int{2}
	p.Hops[2].DependsOn = []int{3}
	r := scheduler.NewWalker(4, probes.Run).Walk(context.Background(), p)
	if r.Success || r.FirstFailing != 1 {
		t.Fatalf("first failing = %d, want 1 (alb); hops %+v", r.FirstFailing, r.Hops)
	}
	// A hop that fails on its own, with healthy dependencies, is itself first.
	p.Hops[1] = httpHop("alb", addr(ok))
	p.Hops[1].DependsOn = []int{2}
	r = scheduler.NewWalker(4, probes.Run).Walk(context.Background(), p)
	if r.FirstFailing != 0 {
		t.Fatalf("first failing = %d, want 0 (edge)", r.FirstFailing)
	}
	// Skipped hops neither fail nor count.
	p.Hops[0].Skip = "not reachable"
	r = scheduler.NewWalker(4, probes.Run).Walk(context.Background(), p)
	if !r.Success || !r.Hops[0].Skipped {
		t.Fatalf("skipped hop counted: %+v", r.Hops[0])
	}
}

func TestConcurrencyIsCapped(t *testing.T) {
	var cur, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		cur.Add(-1)
	}))
	defer srv.Close()
	p := &targets.Path{ID: "p", Interval: time.Minute}
	for i := range 8 {
		h := httpHop("h"+string(rune('a'+i)), addr(srv))
		h.Target.Path = "/" + string(rune('a'+i)) // distinct targets, no sharing
		p.Hops = append(p.Hops, h)
	}
	r := scheduler.NewWalker(2, probes.Run).Walk(context.Background(), p)
	if !r.Success {
		t.Fatalf("walk failed: %+v", r.Hops)
	}
	if peak.Load() > 2 || peak.Load() < 1 {
		t.Fatalf("peak concurrency %d, cap is 2", peak.Load())
	}
}

func TestSchedulerWalksEveryPathRepeatedlyAndStops(t *testing.T) {
	srv, _ := counting(t, 200)
	var mu sync.Mutex
	walks := map[string]int{}
	var paths []*targets.Path
	for _, id := range []string{"p1", "p2", "p3"} {
		h := httpHop("svc", addr(srv))
		h.Target.Path = "/" + id
		paths = append(paths, &targets.Path{ID: id, Interval: 40 * time.Millisecond, Hops: []targets.Hop{h}})
	}
	s := &scheduler.Scheduler{Walker: scheduler.NewWalker(4, probes.Run), Paths: paths, OnResult: func(r scheduler.PathResult) {
		mu.Lock()
		walks[r.Path.ID]++
		mu.Unlock()
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("scheduler did not stop after its context ended")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range paths {
		if walks[p.ID] < 3 {
			t.Errorf("path %s walked %d times in 800ms at a 40ms interval", p.ID, walks[p.ID])
		}
	}
}

func TestOffsetsSpreadPathsOverTheInterval(t *testing.T) {
	buckets := make([]int, 10)
	for i := range 1000 {
		off := scheduler.Offset("path-"+string(rune(i))+"-x", 10*time.Second)
		if off < 0 || off >= 10*time.Second {
			t.Fatalf("offset %s outside the interval", off)
		}
		buckets[off/time.Second]++
	}
	for i, n := range buckets {
		if n < 50 || n > 150 {
			t.Errorf("second %d of the interval has %d of 1000 starts; not spread", i, n)
		}
	}
	first, again := scheduler.Offset("x", time.Second), scheduler.Offset("x", time.Second)
	if first != again {
		t.Error("offset is not stable")
	}
}

// A blackholed path fails at its timeout on every walk while the healthy
// paths beside it keep their rhythm: no walk of theirs starts late by
// more than a few milliseconds, and none is lost.
func TestBlackholedPathDoesNotDelayTheOthers(t *testing.T) {
	srv, _ := counting(t, 200)
	hang, err := peers.Hang() // accepts, then never answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hang.Stop)
	const interval = 100 * time.Millisecond
	dead := httpHop("apisix", hang.Addr)
	dead.Timeout = 250 * time.Millisecond // longer than the interval: walks overrun
	paths := []*targets.Path{{ID: "dead", Interval: interval, Hops: []targets.Hop{dead}}}
	for _, id := range []string{"a", "b", "c", "d"} {
		h := httpHop("svc", addr(srv))
		h.Target.Path = "/" + id
		paths = append(paths, &targets.Path{ID: id, Interval: interval, Hops: []targets.Hop{h}})
	}
	var rmu sync.Mutex
	lags := map[string][]time.Duration{}
	failures := 0
	s := &scheduler.Scheduler{Walker: scheduler.NewWalker(8, probes.Run), Paths: paths, OnResult: func(r scheduler.PathResult) {
		rmu.Lock()
		defer rmu.Unlock()
		lags[r.Path.ID] = append(lags[r.Path.ID], r.Lag)
		if r.Path.ID == "dead" && !r.Success && strings.Contains(r.Hops[0].Error, "no answer within 250ms") {
			failures++
		}
	}}
	runFor(s, 1500*time.Millisecond)
	rmu.Lock()
	defer rmu.Unlock()
	if failures < 3 {
		t.Errorf("the blackholed path failed at its timeout %d times in 1.5s, want at least 3", failures)
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		if n := len(lags[id]); n < 10 {
			t.Errorf("path %s walked %d times in 1.5s at 100ms; walks were lost", id, n)
		}
		// The property is independence, not precision (make bench measures
		// jitter): a walk held up by the blackhole would start ~250ms late.
		for _, l := range lags[id] {
			if l > 100*time.Millisecond {
				t.Errorf("path %s started a walk %s late beside a blackholed path", id, l)
			}
		}
	}
}

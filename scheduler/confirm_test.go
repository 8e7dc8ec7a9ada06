package scheduler_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	r := scheduler.NewWalker(4).Walk(context.Background(), confirmPath(addr(srv), 2, 10*time.Millisecond))
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
		r := scheduler.NewWalker(4).Walk(context.Background(), confirmPath(addr(srv), retries, 10*time.Millisecond))
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
	r := scheduler.NewWalker(4).Walk(context.Background(), p)
	if h := r.Hops[0]; h.Attempts != 1 || hits.Load() != 1 {
		t.Errorf("%d attempts (%d requests) in a 1.1 s interval, want 1", h.Attempts, hits.Load())
	}
	// Cancellation ends a confirmation at once, between attempts too.
	p = confirmPath(addr(srv), 5, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	done := make(chan scheduler.PathResult)
	go func() { done <- scheduler.NewWalker(4).Walk(ctx, p) }()
	select {
	case r := <-done:
		if r.Success {
			t.Error("a cancelled confirmation reported success")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a confirmation waiting a minute between retries did not end on cancellation")
	}
}

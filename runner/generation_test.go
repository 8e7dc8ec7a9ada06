package runner

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// A walk that ignores its cancellation (a library computing what a peer
// asked for) does not wedge a reload or shutdown: stop gives up after
// its grace, counts and logs it. A generation whose walks end on
// cancellation is waited for, not counted.
func TestStopAbandonsAWalkThatOverstays(t *testing.T) {
	var abandoned atomic.Int32
	release := make(chan struct{})
	g := &generation{cancel: func() {}, grace: 200 * time.Millisecond, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		abandoned: func() { abandoned.Add(1) }}
	g.done.Go(func() { <-release }) // ignores cancellation
	start := time.Now()
	g.stop()
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("stop waited %s for a walk that ignores cancellation (grace 200ms)", el)
	}
	if abandoned.Load() != 1 {
		t.Errorf("the abandoned walk was counted %d times, want 1", abandoned.Load())
	}
	close(release) // no goroutine outlives the test

	quit := make(chan struct{})
	g = &generation{cancel: func() { close(quit) }, grace: time.Minute, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		abandoned: func() { abandoned.Add(1) }}
	g.done.Go(func() { <-quit })
	g.stop()
	if abandoned.Load() != 1 {
		t.Error("a generation whose walks ended on cancellation was counted as abandoned")
	}
}

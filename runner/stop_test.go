package runner

import (
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/targets"
)

// A walk that ignores its cancellation (a library computing what a peer
// asked for) does not wedge shutdown: Stop gives up after the longest
// hop timeout and a second, and counts and logs it. Walks that end on
// cancellation are waited for, not counted.
func TestStopAbandonsAWalkThatOverstays(t *testing.T) {
	paths := []*targets.Path{{ID: "p", Hops: []targets.Hop{{Name: "h", Kind: hop.KindTCP, Timeout: 100 * time.Millisecond}}}}
	exp := exporter.New(paths)
	r := &Runner{log: slog.New(slog.NewTextHandler(io.Discard, nil)), exp: exp, paths: paths, stop: func() {}}
	release := make(chan struct{})
	r.done.Go(func() { <-release }) // ignores cancellation
	start := time.Now()
	r.Stop()
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("Stop waited %s for a walk that ignores cancellation (grace 1.1s)", el)
	}
	abandoned := func() float64 { return sample(t, exp, "hopprobe_walk_generations_abandoned_total") }
	if n := abandoned(); n != 1 {
		t.Errorf("the abandoned walk was counted %v times, want 1", n)
	}
	close(release) // no goroutine outlives the test

	quit := make(chan struct{})
	r = &Runner{log: r.log, exp: exp, paths: paths, stop: func() { close(quit) }}
	r.done.Go(func() { <-quit })
	r.Stop()
	if n := abandoned(); n != 1 {
		t.Error("walks that ended on cancellation were counted as abandoned")
	}
}

// sample reads one unlabelled series from the exporter's scrape.
func sample(t *testing.T, exp *exporter.Exporter, name string) float64 {
	t.Helper()
	var b strings.Builder
	if err := exp.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("the scrape has no %s", name)
	return 0
}

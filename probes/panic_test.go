package probes

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/allinx/hopprobe/hop"
)

type panicky struct{}

func (panicky) Probe(context.Context, *hop.Target, *hop.Report) error {
	var s []int
	_ = s[len("boom")] // index out of range, as a library would
	return nil
}

// A prober that panics fails its hop with the panic as the reason, the
// panic is counted for its kind, and the caller goes on.
func TestPanicIsAFailedHop(t *testing.T) {
	old := registry[hop.KindRedis]
	registry[hop.KindRedis] = entry{prober: panicky{}, store: old.store}
	defer func() { registry[hop.KindRedis] = old }()
	before := PanicCount(hop.KindRedis)
	r := Run(context.Background(), hop.KindRedis, &hop.Target{Address: "127.0.0.1:1"}, time.Second)
	if r.Success || !strings.HasPrefix(r.Error, "probe panicked") || !strings.Contains(r.Error, "index out of range") {
		t.Fatalf("result %+v", r)
	}
	if PanicCount(hop.KindRedis) != before+1 {
		t.Fatalf("panic count %d, want %d", PanicCount(hop.KindRedis), before+1)
	}
}

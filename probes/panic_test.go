package probes

import (
	"context"
	"strings"
	"testing"
	"time"
)

type panicky struct{}

func (panicky) Probe(context.Context, *Target, *Report) error {
	var s []int
	_ = s[len("boom")] // index out of range, as a library would
	return nil
}

// A prober that panics fails its hop with the panic as the reason, the
// panic is counted for its kind, and the caller goes on.
func TestPanicIsAFailedHop(t *testing.T) {
	old := registry[KindRedis]
	registry[KindRedis] = entry{prober: panicky{}, store: old.store}
	defer func() { registry[KindRedis] = old }()
	before := PanicCount(KindRedis)
	r := Run(context.Background(), KindRedis, &Target{Address: "127.0.0.1:1"}, time.Second)
	if r.Success || !strings.HasPrefix(r.Error, "probe panicked") || !strings.Contains(r.Error, "index out of range") {
		t.Fatalf("result %+v", r)
	}
	if PanicCount(KindRedis) != before+1 {
		t.Fatalf("panic count %d, want %d", PanicCount(KindRedis), before+1)
	}
}

package targets_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/targets"
)

// A typing mistake that falls through to a host's catch-all names the
// route that was meant; a path the catch-all is really for, an exact
// path ID and a correct request path do not.
func TestCloserRoutesCatchTyposThatFallThrough(t *testing.T) {
	cfg := testkit.Allinx(t)
	err := targets.CloserRoutes(cfg, "api.allinpro.com/futurs/ws")
	var ce *targets.CatchAllError
	if !errors.As(err, &ce) || ce.Matched != "api.allinpro.com/*" || !slices.Equal(ce.Closer, []string{"api.allinpro.com/futures/ws"}) {
		t.Fatalf("futurs/ws: %v", err)
	}
	for _, q := range []string{"api.allinpro.com/futures/ws", "https://api.allinpro.com/futures/ws?x=1", "api.allinpro.com/v1/ticker",
		"api.allinpro.com/futuresopen/x", "nowhere.example/x"} {
		if err := targets.CloserRoutes(cfg, q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// A route's probe.dual_stack reaches its DNS hop, and only its.
func TestDualStackReachesTheRoutesDNSHop(t *testing.T) {
	cfg := testkit.Allinx(t)
	cfg.Routes[0].Probe.DualStack = true
	paths, err := targets.Expand(cfg, "external")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, p := range paths {
		for _, h := range p.Hops {
			if h.Kind != "dns" {
				continue
			}
			want := slices.Contains(cfg.Routes[0].Hosts, strings.TrimSuffix(h.Target.Host, ".")) && strings.Contains(p.ID, cfg.Routes[0].Path)
			if h.Target.DualStack && !want {
				t.Errorf("%s: its DNS hop is dual stack, but its route is not", p.ID)
			}
			if h.Target.DualStack {
				seen++
			}
		}
	}
	if seen == 0 {
		t.Errorf("no DNS hop of route %s%s is dual stack", cfg.Routes[0].Hosts[0], cfg.Routes[0].Path)
	}
}

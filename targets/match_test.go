package targets_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/allinx/hopprobe/hop"
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

// A dual-stack route's edge, reached by name, becomes one hop per
// address family, each resolved through the vantage's resolver and each
// depending on what the edge depends on; a hop limited to one family is
// probed over that one, under its own name.
func TestADualStackEdgeIsAHopPerFamily(t *testing.T) {
	cfg := testkit.Allinx(t)
	cfg.Routes[0].Probe.DualStack = true
	paths, err := targets.Expand(cfg, "external")
	if err != nil {
		t.Fatal(err)
	}
	var p *targets.Path
	for _, q := range paths {
		if strings.HasPrefix(q.ID, cfg.Routes[0].Hosts[0]+cfg.Routes[0].Path) {
			p = q
			break
		}
	}
	if p == nil {
		t.Fatalf("no path for route %s%s", cfg.Routes[0].Hosts[0], cfg.Routes[0].Path)
	}
	byName := map[string]targets.Hop{}
	for _, h := range p.Hops {
		byName[h.Name] = h
	}
	edge := cfg.FindEntry(cfg.Routes[0].Entries[0]).Hops[0].Name
	v4, ok4 := byName[edge+"-ipv4"]
	v6, ok6 := byName[edge+"-ipv6"]
	if !ok4 || !ok6 || byName[edge].Name != "" {
		t.Fatalf("hops %v: want %s-ipv4 and %s-ipv6 instead of %s", slices.Collect(maps.Keys(byName)), edge, edge, edge)
	}
	if v4.Target.Family != "ipv4" || v6.Target.Family != "ipv6" || v4.Node != edge || v6.Node != edge {
		t.Errorf("families %q %q, nodes %q %q", v4.Target.Family, v6.Target.Family, v4.Node, v6.Node)
	}
	if !slices.Equal(v4.DependsOn, v6.DependsOn) {
		t.Errorf("%s-ipv4 depends on %v, %s-ipv6 on %v", edge, v4.DependsOn, edge, v6.DependsOn)
	}
	if _, ok := byName[edge+"-ipv6-tls"]; !ok && v6.Target.Scheme == "https" {
		t.Errorf("no TLS hop for %s over IPv6", edge)
	}
	// Limited to one family: one hop, under its own name.
	cfg.Entries[0].Hops[0].Family = "ipv6"
	paths, err = targets.Expand(cfg, "external")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range paths[0].Hops {
		if strings.HasPrefix(h.Name, cfg.Entries[0].Hops[0].Name+"-ipv4") {
			t.Errorf("a hop limited to IPv6 has an IPv4 twin %s", h.Name)
		}
		if h.Name == cfg.Entries[0].Hops[0].Name && h.Target.Family != "ipv6" {
			t.Errorf("%s: family %q, want ipv6", h.Name, h.Target.Family)
		}
	}
}

// Shards split the paths: every path in exactly one shard, and each
// shard a fair share of the shipped topology's paths.
func TestShardsSplitThePathsOnce(t *testing.T) {
	paths, err := targets.Expand(testkit.Allinx(t), "cluster")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	seen := map[string]int{}
	for i := range n {
		share := targets.Shard(paths, i, n)
		if len(share) < len(paths)/n/2 {
			t.Errorf("shard %d/%d has %d of %d paths", i, n, len(share), len(paths))
		}
		for _, p := range share {
			seen[p.ID]++
		}
	}
	for _, p := range paths {
		if seen[p.ID] != 1 {
			t.Errorf("%s is in %d shards", p.ID, seen[p.ID])
		}
	}
	if got := targets.Shard(paths, 0, 1); len(got) != len(paths) {
		t.Errorf("one shard has %d of %d paths", len(got), len(paths))
	}
}

// The shared-result key fixed when a path is built is the one its target
// gives, and a hop built by hand computes it. (Path.add sets it, so a
// hop copied and re-addressed before it is added, as discovery's pod
// hops are, gets its own.)
func TestCacheKeysAreTheTargetsKeys(t *testing.T) {
	paths, err := targets.Expand(testkit.Allinx(t), "cluster")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		for i := range p.Hops {
			h := &p.Hops[i]
			if got, want := h.CacheKey(), h.Target.Key(h.Kind); got != want {
				t.Errorf("%s/%s: cache key %s, its target's %s", p.ID, h.Name, got, want)
			}
		}
	}
	h := targets.Hop{Kind: "tcp", Target: hop.Target{Address: "127.0.0.1:1"}}
	if h.CacheKey() != h.Target.Key("tcp") {
		t.Error("a hop built by hand has no cache key")
	}
}

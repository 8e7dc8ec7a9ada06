package targets_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/targets"
)

func allinx(t testing.TB) *config.Config { return testkit.Allinx(t) }

func TestMatchRouteLikeAPISIX(t *testing.T) {
	cfg := allinx(t)
	cases := map[string]string{
		"api.allinpro.com /futures/ws":           "morph/morph-futuresws-app:8080",
		"api.allinpro.com /futures/ws/stream":    "morph/morph-futuresws-app:8080",
		"api.allinpro.com /futures/web/api/v1/x": "morph/morph-futuresweb-web:8080",
		"api.allinpro.com /futures/web":          "landry/landry-spotapi-web:8080",
		"api.allinpro.com /":                     "landry/landry-spotapi-web:8080",
		"api.allinpro.com /moth-nexs-gateway/a":  "moth/moth-nexs-gateway:8080",
		"mackerel.aie.prod /api/users":           "landry/landry-anemone-web:8080",
		"mackerel.aie.prod /index.html":          "landry/landry-mackerel-spa:8080",
		"mackerel.allinpro.com /":                "landry/landry-mackerel-spa:8080",
		"risk.aie.prod /anything":                "morph/morph-narwhal-accesshttp:8080",
		"ws.allinpro.com /ws":                    "landry/landry-spotws-web:8080",
	}
	for q, want := range cases {
		host, path, _ := strings.Cut(q, " ")
		r, _ := targets.MatchRoute(cfg, host, path)
		if r == nil || r.Service != want {
			got := "<none>"
			if r != nil {
				got = r.Service
			}
			t.Errorf("%s%s → %s, want %s", host, path, got, want)
		}
	}
	if r, _ := targets.MatchRoute(cfg, "ws.allinpro.com", "/other"); r != nil {
		t.Errorf("ws.allinpro.com/other matched %s; /ws* must not match it", r.Service)
	}
}

func TestResolveFuturesWSHopChain(t *testing.T) {
	cfg := allinx(t)
	paths, err := targets.ResolveLive(cfg, config.VantageCluster, "api.allinpro.com/futures/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 {
		t.Fatalf("got %d paths", len(paths))
	}
	p := paths[0]
	if p.ID != "api.allinpro.com/futures/ws*" || p.Service != "morph-futuresws-app" {
		t.Fatalf("resolved to %s (%s)", p.ID, p.Service)
	}
	var names []string
	for _, h := range p.Hops {
		names = append(names, h.Name+":"+string(h.Kind))
	}
	want := "dns:dns cloudfront-tls:tls cloudfront:websocket alb-public:websocket apisix:websocket service:websocket futuresnewredis:redis"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("hops\n got %s\nwant %s", got, want)
	}
	svc := p.Hops[5]
	if svc.Target.Address != "morph-futuresws-app.morph.svc.cluster.local:8080" || svc.Target.Host != "api.allinpro.com" {
		t.Errorf("service hop goes to %s with Host %s", svc.Target.Address, svc.Target.Host)
	}
	// The edge request depends on APISIX (alb-public has no address and is
	// skipped), APISIX on the service, the service on its Redis.
	if d := p.Hops[2].DependsOn; len(d) != 1 || d[0] != 4 {
		t.Errorf("cloudfront depends on %v, want [4]", d)
	}
	if d := p.Hops[5].DependsOn; len(d) != 1 || d[0] != 6 {
		t.Errorf("service depends on %v, want [6]", d)
	}
	// The map draws the documented flow, the TLS hop folded into its edge.
	var edges []string
	for _, e := range p.Edges() {
		edges = append(edges, e[0]+">"+e[1])
	}
	wantEdges := "dns>cloudfront cloudfront>alb-public alb-public>apisix apisix>morph/morph-futuresws-app morph/morph-futuresws-app>futuresnewredis"
	if got := strings.Join(edges, " "); got != wantEdges {
		t.Errorf("edges\n got %s\nwant %s", got, wantEdges)
	}
}

func TestExternalVantageSkipsInClusterHops(t *testing.T) {
	cfg := allinx(t)
	paths, err := targets.ResolveLive(cfg, config.VantageExternal, "api.allinpro.com/futures/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range paths[0].Hops {
		probed := h.Skip == ""
		wantProbed := h.Name == "dns" || strings.HasPrefix(h.Name, "cloudfront")
		if probed != wantProbed {
			t.Errorf("hop %s: probed=%v from external (skip reason %q)", h.Name, probed, h.Skip)
		}
	}
}

func TestUnknownPathListsNearest(t *testing.T) {
	cfg := allinx(t)
	// A typo in the host, and only a part of the path ID typed: the
	// path that contains what was typed comes first, not a short ID a
	// few edits away (ws.allinpro.com/ws* once was).
	for _, q := range []string{"api.allinpro.co/futures/ws", "futures/ws"} {
		_, err := targets.ResolveLive(cfg, config.VantageCluster, q, nil)
		var up *targets.UnknownPathError
		if !errors.As(err, &up) {
			t.Fatalf("%s: want UnknownPathError, got %v", q, err)
		}
		if len(up.Nearest) == 0 || up.Nearest[0] != "api.allinpro.com/futures/ws*" {
			t.Fatalf("%s: nearest = %v", q, up.Nearest)
		}
	}
}

func TestExpandCoversEveryRouteServiceAndNodePort(t *testing.T) {
	cfg := allinx(t)
	paths, err := targets.Expand(cfg, config.VantageCluster)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]*targets.Path{}
	for _, p := range paths {
		if ids[p.ID] != nil {
			t.Errorf("duplicate path id %s", p.ID)
		}
		ids[p.ID] = p
		seen := map[string]bool{}
		for _, h := range p.Hops {
			if seen[h.Name] {
				t.Errorf("path %s has two hops named %s", p.ID, h.Name)
			}
			seen[h.Name] = true
			if h.Skip == "" && !probes.Known(h.Kind) && h.Target.Store == nil {
				t.Errorf("path %s hop %s has kind %s with no prober", p.ID, h.Name, h.Kind)
			}
		}
	}
	for _, r := range cfg.Routes {
		for _, h := range r.Hosts {
			for _, e := range r.Entries {
				if ids[targets.RouteID(&r, h, e)] == nil {
					t.Errorf("route %s%s via %s has no path", h, r.Path, e)
				}
			}
		}
	}
	for want := range map[string]bool{"svc/landry/landry-ces-matchengine": true, "nodeport/landry/landry-trans-web": true,
		"www.allinpro.com/*@awf-spa-nlb": true, "svc/morph/morph-narwhal-historywriter": true} {
		if ids[want] == nil {
			t.Errorf("missing path %s", want)
		}
	}
	if n := len(ids["svc/landry/landry-ces-cachecenter"].Hops); n != 6 {
		t.Errorf("ces-cachecenter has %d hops, want one per port (6)", n)
	}
}

// The status, the CLI and the traces name each hop's target this way.
func TestDescribeNamesEachKindOfTarget(t *testing.T) {
	for _, c := range []struct {
		hop  targets.Hop
		want string
	}{
		{targets.Hop{Kind: hop.KindDNS, Target: hop.Target{Host: "api.example.test"}}, "resolve api.example.test (system resolver)"},
		{targets.Hop{Kind: hop.KindDNS, Target: hop.Target{Host: "api.example.test", Resolver: "10.0.0.2:53"}}, "resolve api.example.test (10.0.0.2:53)"},
		{targets.Hop{Kind: hop.KindHTTP, Target: hop.Target{Scheme: "https", Host: "api.example.test", Path: "/health"}}, "https://api.example.test/health"},
		{targets.Hop{Kind: hop.KindWebSocket, Target: hop.Target{Scheme: "wss", Host: "api.example.test", Path: "/ws", Address: "127.0.0.1:8443"}}, "wss://api.example.test/ws via 127.0.0.1:8443"},
		{targets.Hop{Kind: hop.KindTLS, Target: hop.Target{Host: "api.example.test", Address: "127.0.0.1:443"}}, "TLS 127.0.0.1:443 (SNI api.example.test)"},
		{targets.Hop{Kind: hop.KindRedis, Target: hop.Target{Address: "127.0.0.1:6379"}}, "127.0.0.1:6379"},
	} {
		if got := c.hop.Describe(); got != c.want {
			t.Errorf("%s hop: %q, want %q", c.hop.Kind, got, c.want)
		}
	}
}

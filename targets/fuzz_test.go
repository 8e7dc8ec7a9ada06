package targets_test

import (
	"strings"
	"testing"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/targets"
)

// FuzzMatchRoute: any host and path either matches nothing or matches a
// route whose host pattern and path pattern really cover them, and Resolve
// never panics on a query. Seeds: testdata/fuzz/FuzzMatchRoute.
func FuzzMatchRoute(f *testing.F) {
	cfg := testkit.Allinx(f)
	for _, s := range [][2]string{{"api.allinpro.com", "/futures/ws"}, {"*.allinpro.com", "/"}, {"", ""}, {"API.ALLINPRO.COM.", "//x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, host, path string) {
		r, pattern := targets.MatchRoute(cfg, host, path)
		if r != nil {
			if !targets.HostMatches(pattern, host) {
				t.Fatalf("%s%s matched route host %q that does not cover it", host, path, pattern)
			}
			if p := r.Path; strings.HasSuffix(p, "*") && !strings.HasPrefix(path, strings.TrimSuffix(p, "*")) || !strings.HasSuffix(p, "*") && p != path {
				t.Fatalf("%s%s matched path pattern %q that does not cover it", host, path, p)
			}
		}
		_, _ = targets.ResolveLive(cfg, config.VantageCluster, host+path, nil)
	})
}

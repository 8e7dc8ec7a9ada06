package targets_test

import (
	"errors"
	"slices"
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

package live_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/probes"
)

// Every test in this package must leave no goroutine behind (informers
// included).
// The store kinds come from the probes registry, as in the programs.
func TestMain(m *testing.M) {
	probes.RegisterKinds()
	goleak.VerifyTestMain(m)
}

func allinx(t testing.TB) *config.Config { return testkit.Allinx(t) }

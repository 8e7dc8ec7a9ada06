package live_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/testkit"
)

// Every test in this package must leave no goroutine behind (informers
// included).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func allinx(t testing.TB) *config.Config { return testkit.Allinx(t) }

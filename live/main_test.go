package live_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/allinx/hopprobe/config"
)

// Every test in this package must leave no goroutine behind (informers
// included).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func allinx(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Load("../config/allinx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

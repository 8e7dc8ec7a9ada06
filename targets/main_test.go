package targets_test

import (
	"testing"

	"github.com/allinx/hopprobe/probes"
	"go.uber.org/goleak"
)

// Every test in this package must leave no goroutine behind.
// The store kinds come from the probes registry, as in the programs.
func TestMain(m *testing.M) {
	probes.RegisterKinds()
	goleak.VerifyTestMain(m)
}

package config_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/allinx/hopprobe/probes"
)

// Every test in this package must leave no goroutine behind. The data
// store kinds are described in the probes registry, which a program
// registers with the topology loader before it loads one.
func TestMain(m *testing.M) {
	probes.RegisterKinds()
	goleak.VerifyTestMain(m)
}

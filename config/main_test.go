package config_test

import (
	"testing"

	"go.uber.org/goleak"

	// The data store kinds are described in the probes registry, which
	// registers them with the topology loader.
	_ "github.com/allinx/hopprobe/probes"
)

// Every test in this package must leave no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

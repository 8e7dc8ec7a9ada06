// Package testkit holds what several packages' tests share: a log buffer
// that servers write while the test reads, and the shipped topology.
package testkit

import (
	"strings"
	"sync"
	"testing"

	"github.com/allinx/hopprobe/config"
)

// Buffer collects a server's log lines while the test reads them.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Allinx loads the shipped production topology from a package directory
// one level below the repository's root.
func Allinx(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Load("../config/allinx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

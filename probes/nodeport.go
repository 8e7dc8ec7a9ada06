package probes

import (
	"context"

	"github.com/allinx/hopprobe/hop"
)

// nodeportProber checks one node's NodePort: a TCP connect, then an HTTP
// GET when the Service speaks HTTP (Scheme set).
type nodeportProber struct{}

func (nodeportProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	if t.Scheme == "" {
		return tcpProber{}.Probe(ctx, t, rep)
	}
	return httpProber{}.Probe(ctx, t, rep)
}

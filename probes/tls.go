package probes

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/allinx/hopprobe/hop"
)

// tlsProber connects and completes a TLS handshake, recording the
// handshake time and the certificate expiry.
type tlsProber struct{}

func (tlsProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	tc, err := tlsConfig(t.TLS, t.Host)
	if err != nil {
		return err
	}
	conn, err := dialTarget(ctx, t, rep)
	if err != nil {
		return err
	}
	defer conn.Close()
	tconn := tls.Client(conn, tc)
	start := time.Now()
	err = tconn.HandshakeContext(ctx)
	since(rep, "tls", start)
	if err != nil {
		return connected(fmt.Errorf("TLS handshake with %s (server name %q) failed: %w", t.Address, tc.ServerName, err))
	}
	recordCert(tconn.ConnectionState(), rep)
	if !rep.CertExpiry.IsZero() && time.Until(rep.CertExpiry) < 0 {
		return connected(fmt.Errorf("certificate of %s expired at %s", t.Host, rep.CertExpiry.Format(time.RFC3339)))
	}
	return nil
}

package probes

import (
	"context"
	"fmt"
	"net"
	"time"
)

// tcpProber checks that something accepts a TCP connection.
type tcpProber struct{}

func (tcpProber) Probe(ctx context.Context, t *Target, rep *Report) error {
	conn, err := dial(ctx, t.Address, rep)
	if err != nil {
		return err
	}
	rep.Detail("remote", conn.RemoteAddr().String())
	return conn.Close()
}

// dial connects to addr, timing name resolution and connect as separate
// phases so that a slow resolver is not blamed on the peer.
func dial(ctx context.Context, addr string, rep *Report) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q is not host:port: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		start := time.Now()
		ips, err := net.DefaultResolver.LookupHost(ctx, host)
		rep.since("dns", start)
		if err != nil {
			return nil, fmt.Errorf("cannot resolve %s: %w", host, err)
		}
		host = ips[0]
	}
	var d net.Dialer
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	rep.since("connect", start)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w", addr, err)
	}
	return conn, nil
}

package probes

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/allinx/hopprobe/hop"
)

// tcpProber checks that something accepts a TCP connection.
type tcpProber struct{}

func (tcpProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	conn, err := dial(ctx, t.Address, rep)
	if err != nil {
		return err
	}
	rep.Detail("remote", conn.RemoteAddr().String())
	return conn.Close()
}

// dial connects to addr, timing name resolution and connect as separate
// phases so that a slow resolver is not blamed on the peer. A name that
// resolves to several addresses is tried address by address, each given
// its share of the time left (as net.Dialer does), and the error says
// which addresses failed and how. The connection is guarded by the
// probe's scope: its reads count against the byte budget, and it is
// closed when the probe ends.
func dial(ctx context.Context, addr string, rep *hop.Report) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q is not host:port: %w", addr, err)
	}
	ips := []string{host}
	if net.ParseIP(host) == nil {
		start := time.Now()
		ips, err = net.DefaultResolver.LookupHost(ctx, host)
		since(rep, "dns", start)
		if err != nil {
			return nil, fmt.Errorf("cannot resolve %s: %w", host, err)
		}
	}
	start := time.Now()
	defer since(rep, "connect", start)
	var tried []string
	for i, ip := range ips {
		conn, err := dialOne(ctx, net.JoinHostPort(ip, port), len(ips)-i)
		if err == nil {
			return scopeOf(ctx).guard(conn), nil
		}
		last := i == len(ips)-1 || ctx.Err() != nil
		if last && len(tried) == 0 {
			return nil, fmt.Errorf("cannot connect to %s: %w", addr, err)
		}
		if last {
			return nil, fmt.Errorf("cannot connect to %s at any of its addresses (%s; %s): %w", addr, strings.Join(tried, "; "), ip, err)
		}
		tried = append(tried, fmt.Sprintf("%s: %v", ip, err))
	}
	return nil, fmt.Errorf("%s resolved to no address", host)
}

// dialOne connects to one address with its share of the time left: the
// time left divided among the addresses still to try, but at least two
// seconds when there is that much (net.Dialer's rule), so that one
// blackholed address cannot eat the time of the next.
func dialOne(ctx context.Context, addr string, left int) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok && left > 1 {
		share := time.Until(dl) / time.Duration(left)
		if share < 2*time.Second {
			share = min(2*time.Second, time.Until(dl))
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, share)
		defer cancel()
	}
	// A probe's connection lives for one exchange, so TCP keep-alive
	// (net.Dialer's default, four setsockopt calls per connection)
	// would never fire.
	d := net.Dialer{KeepAlive: -1}
	return d.DialContext(ctx, "tcp", addr)
}

package probes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/allinx/hopprobe/hop"
)

// tcpProber checks that something accepts a TCP connection.
type tcpProber struct{}

func (tcpProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	conn, err := dialTarget(ctx, t, rep)
	if err != nil {
		return err
	}
	rep.Detail("remote", conn.RemoteAddr().String())
	return conn.Close()
}

// dialTarget connects to the hop's address, timing name resolution and connect as separate
// phases so that a slow resolver is not blamed on the peer. A name that
// resolves to several addresses is tried address by address, each given
// its share of the time left (as net.Dialer does), and the error says
// which addresses failed and how. The connection is guarded by the
// probe's scope: its reads count against the byte budget, and it is
// closed when the probe ends.
func dialTarget(ctx context.Context, t *hop.Target, rep *hop.Report) (net.Conn, error) {
	return dialFamily(ctx, t.Address, t.Family, t.Resolver, rep)
}

// dialFamily is dialTarget for an address, in one address family, "ipv4"
// or "ipv6" ("" for either: a dual-stack edge is probed once over each),
// resolving a name through resolver (host:port; the system's when empty)
// for that family's records only.
func dialFamily(ctx context.Context, addr, family, resolver string, rep *hop.Report) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q is not host:port: %w", addr, err)
	}
	ips := []string{host}
	if ip := net.ParseIP(host); ip == nil {
		start := time.Now()
		ips, err = lookupFamily(ctx, host, family, resolver)
		since(rep, "dns", start)
		if err != nil {
			return nil, err
		}
	} else if family != "" && (ip.To4() != nil) != (family == "ipv4") {
		return nil, fmt.Errorf("%s is not an %s address", host, familyName(family))
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
	d := net.Dialer{KeepAlive: -1, LocalAddr: localAddr("tcp", addr)}
	return d.DialContext(ctx, "tcp", addr)
}

// lookupFamily resolves host to the addresses of one family ("" both).
func lookupFamily(ctx context.Context, host, family, resolver string) ([]string, error) {
	r := systemResolver()
	if resolver != "" {
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return scopeOf(ctx).dial(ctx, network, resolver)
		}}
	}
	network := map[string]string{"": "ip", "ipv4": "ip4", "ipv6": "ip6"}[family]
	addrs, err := r.LookupNetIP(ctx, network, host)
	var dnsErr *net.DNSError
	switch {
	case family != "" && (len(addrs) == 0 || errors.As(err, &dnsErr) && dnsErr.IsNotFound):
		return nil, fmt.Errorf("%s has no %s address (%s record)", host, familyName(family), map[string]string{"ipv4": "A", "ipv6": "AAAA"}[family])
	case err != nil:
		return nil, fmt.Errorf("cannot resolve %s: %w", host, err)
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.Unmap().String())
	}
	return out, nil
}

func familyName(family string) string {
	return map[string]string{"ipv4": "IPv4", "ipv6": "IPv6"}[family]
}

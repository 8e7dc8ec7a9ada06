package probes

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
)

// source is the address every probe's connections leave from, when one
// is set (SetSourceAddress).
var source atomic.Pointer[netip.Addr]

// SetSourceAddress makes every probe's connections and datagrams leave
// from addr (probe serve --source-address): a host with several
// addresses, or several vantages on one host, each seen by the peers and
// their firewalls as its own. Only connections to the same address
// family are bound; an IPv6 hop of a prober bound to an IPv4 address
// leaves from the system's choice. The zero Addr unsets it.
func SetSourceAddress(addr netip.Addr) {
	if !addr.IsValid() {
		source.Store(nil)
		return
	}
	a := addr.Unmap()
	source.Store(&a)
}

// localAddr is what a connection of network ("tcp", "udp", …) to remote
// (host:port) binds: the source address when one is set and remote is a
// name or an address of its family; nil otherwise.
func localAddr(network, remote string) net.Addr {
	src := source.Load()
	if src == nil {
		return nil
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().Is4() != src.Is4() {
		return nil
	}
	if network == "udp" || network == "udp4" || network == "udp6" {
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(*src, 0))
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(*src, 0))
}

// systemResolver resolves through the system's name servers, from the
// source address when one is set.
func systemResolver() *net.Resolver {
	if source.Load() == nil {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, server string) (net.Conn, error) {
		return scopeOf(ctx).dial(ctx, network, server)
	}}
}

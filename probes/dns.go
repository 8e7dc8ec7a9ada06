package probes

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/allinx/hopprobe/hop"
	"github.com/miekg/dns"
)

// maxCNAMEs bounds how many aliases a name may pass through.
const maxCNAMEs = 8

// dnsProber resolves the hop's host (A and AAAA) against the vantage's
// resolver and reports the answer's rcode, CNAME chain and addresses.
type dnsProber struct{}

func (dnsProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	server := t.Resolver
	if server == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cc.Servers) == 0 {
			return fmt.Errorf("no resolver configured for this vantage and /etc/resolv.conf is unusable: %v", err)
		}
		server = net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	start := time.Now()
	var addrs []string
	var lastErr error
	var missing []string // families without a record, for a dual-stack name
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		got, err := lookup(ctx, server, t.Host, qtype)
		if err != nil {
			lastErr = err
			continue
		}
		if len(got) == 0 {
			missing = append(missing, dns.TypeToString[qtype])
		}
		addrs = append(addrs, got...)
	}
	since(rep, "resolve", start)
	rep.Detail("resolver", server)
	if len(addrs) == 0 {
		if lastErr == nil {
			lastErr = fmt.Errorf("resolver %s returned no A or AAAA record for %s", server, t.Host)
		}
		return lastErr
	}
	// Sorted, so that a change of the answer set is a change of the text.
	slices.Sort(addrs)
	rep.Detail("addresses", strings.Join(addrs, ","))
	if t.DualStack && lastErr == nil && len(missing) > 0 {
		return fmt.Errorf("resolver %s returned no %s record for %s, which is documented as dual stack (dual_stack: true)", server, strings.Join(missing, " or "), t.Host)
	}
	return nil
}

// ednsSize is the UDP payload size the probe offers (the DNS Flag Day
// 2020 value): large enough for a hundred A records, small enough to
// pass any path without fragmentation. A larger answer comes truncated
// and is asked again over TCP.
const ednsSize = 1232

// lookup asks server for name/qtype, over TCP again when the UDP answer
// was truncated, and follows the CNAME chain inside the answer, which a
// recursive resolver returns in one response.
func lookup(ctx context.Context, server, name string, qtype uint16) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsSize, false)
	in, err := exchange(ctx, "udp", server, m)
	if err == nil && in.Truncated {
		in, err = exchange(ctx, "tcp", server, m)
	}
	if err != nil {
		return nil, err
	}
	if in.Rcode != dns.RcodeSuccess {
		return nil, connected(fmt.Errorf("resolver %s answered %s for %s", server, dns.RcodeToString[in.Rcode], name))
	}
	return answerAddrs(in, name)
}

// exchange sends m over one connection of the probe's scope, so that the
// answer counts against the byte budget and a cancelled probe stops
// waiting at once.
func exchange(ctx context.Context, network, server string, m *dns.Msg) (*dns.Msg, error) {
	conn, err := scopeOf(ctx).dial(ctx, network, server)
	if err != nil {
		return nil, fmt.Errorf("resolver %s did not answer for %s: %w", server, strings.TrimSuffix(m.Question[0].Name, "."), err)
	}
	co := &dns.Conn{Conn: conn, UDPSize: ednsSize}
	defer co.Close()
	c := &dns.Client{Net: network, UDPSize: ednsSize}
	in, _, err := c.ExchangeWithConnContext(ctx, m, co)
	if err != nil {
		err = fmt.Errorf("resolver %s did not answer for %s over %s: %w", server, strings.TrimSuffix(m.Question[0].Name, "."), network, err)
		if network == "tcp" {
			err = connected(err) // it answered over UDP, truncated
		}
		return nil, err
	}
	return in, nil
}

// answerAddrs follows name's CNAME chain through the answer section and
// returns the addresses at its end; a loop or an overlong chain is the
// resolver's fault.
func answerAddrs(in *dns.Msg, name string) ([]string, error) {
	target := dns.Fqdn(name)
	seen := map[string]bool{strings.ToLower(target): true}
	for range maxCNAMEs + 1 {
		var next string
		var addrs []string
		for _, rr := range in.Answer {
			if rr == nil || !strings.EqualFold(rr.Header().Name, target) {
				continue
			}
			switch r := rr.(type) {
			case *dns.A:
				addrs = append(addrs, r.A.String())
			case *dns.AAAA:
				addrs = append(addrs, r.AAAA.String())
			case *dns.CNAME:
				next = r.Target
			}
		}
		if len(addrs) > 0 {
			return addrs, nil
		}
		if next == "" {
			return nil, nil
		}
		if seen[strings.ToLower(next)] {
			return nil, connected(fmt.Errorf("CNAME loop for %s: %s points back to an earlier name", name, next))
		}
		seen[strings.ToLower(next)] = true
		target = next
	}
	return nil, connected(fmt.Errorf("CNAME chain for %s is longer than %d aliases", name, maxCNAMEs))
}

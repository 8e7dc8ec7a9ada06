package probes

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// maxCNAMEs bounds how many aliases a name may pass through.
const maxCNAMEs = 8

// dnsProber resolves the hop's host (A and AAAA) against the vantage's
// resolver and reports the answer's rcode, CNAME chain and addresses.
type dnsProber struct{}

func (dnsProber) Probe(ctx context.Context, t *Target, rep *Report) error {
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
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		got, err := lookup(ctx, server, t.Host, qtype)
		if err != nil {
			lastErr = err
			continue
		}
		addrs = append(addrs, got...)
	}
	rep.since("resolve", start)
	rep.Detail("resolver", server)
	if len(addrs) == 0 {
		if lastErr == nil {
			lastErr = fmt.Errorf("resolver %s returned no A or AAAA record for %s", server, t.Host)
		}
		return lastErr
	}
	rep.Detail("addresses", strings.Join(addrs, ","))
	return nil
}

// lookup asks server for name/qtype and follows the CNAME chain inside
// the answer, which a recursive resolver returns in one response.
func lookup(ctx context.Context, server, name string, qtype uint16) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	c := &dns.Client{}
	if dl, ok := ctx.Deadline(); ok {
		c.Timeout = time.Until(dl)
	}
	in, _, err := c.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, fmt.Errorf("resolver %s did not answer for %s: %w", server, name, err)
	}
	if in.Rcode != dns.RcodeSuccess {
		return nil, connected(fmt.Errorf("resolver %s answered %s for %s", server, dns.RcodeToString[in.Rcode], name))
	}
	target := dns.Fqdn(name)
	seen := map[string]bool{target: true}
	for range maxCNAMEs + 1 {
		var next string
		var addrs []string
		for _, rr := range in.Answer {
			if !strings.EqualFold(rr.Header().Name, target) {
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

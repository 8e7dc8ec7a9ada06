package probes_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/probes"
)

// With a source address every probe leaves from it, as a vantage of its
// own on a shared host: TCP connects, HTTP over TCP and over QUIC, and
// the datagrams to a resolver. A hop of the other address family leaves
// from the system's choice rather than failing.
func TestProbesLeaveFromTheSourceAddress(t *testing.T) {
	probes.SetSourceAddress(netip.MustParseAddr("127.0.0.2"))
	t.Cleanup(func() { probes.SetSourceAddress(netip.Addr{}) })
	var mu sync.Mutex
	seen := map[string]string{}
	note := func(kind, remote string) {
		host, _, _ := net.SplitHostPort(remote)
		mu.Lock()
		defer mu.Unlock()
		seen[kind] = host
	}
	tcp := serveLoopback(t, func(c net.Conn) {
		note("tcp", c.RemoteAddr().String())
		c.Close()
	}).Addr().String()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { note("http", r.RemoteAddr) }))
	defer web.Close()
	h3, tc := h3Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { note("h3", r.RemoteAddr) }))
	resolver := dnsServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		note("dns", w.RemoteAddr().String())
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(127, 0, 0, 9)})
		w.WriteMsg(m)
	})
	wantOK(t, run(t, hop.KindTCP, hop.Target{Address: tcp}, 5*time.Second))
	wantOK(t, run(t, hop.KindHTTP, hop.Target{Address: addr(web), Host: "svc.test", Scheme: "http", Path: "/", MaxBodyBytes: 1 << 10}, 5*time.Second))
	wantOK(t, run(t, hop.KindHTTP, hop.Target{Address: h3, Host: "edge.example.test", Scheme: "https", Path: "/", TLS: tc, MaxBodyBytes: 1 << 10,
		Protocols: []string{"h3"}}, 5*time.Second))
	wantOK(t, run(t, hop.KindDNS, hop.Target{Host: "api.example.test", Resolver: resolver}, 5*time.Second))
	mu.Lock()
	for _, kind := range []string{"tcp", "http", "h3", "dns"} {
		if seen[kind] != "127.0.0.2" {
			t.Errorf("the %s probe came from %q, want the source address 127.0.0.2", kind, seen[kind])
		}
	}
	mu.Unlock()

	v6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: no IPv6 loopback here (%v); the IPv4 part passed", err)
	}
	defer v6.Close()
	go func() {
		if c, err := v6.Accept(); err == nil {
			c.Close()
		}
	}()
	wantOK(t, run(t, hop.KindTCP, hop.Target{Address: v6.Addr().String()}, 5*time.Second))
}

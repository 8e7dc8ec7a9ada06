package probes_test

import (
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/peers"
)

// dualStackEdge serves HTTP on 127.0.0.1 and ::1 at one port, and a
// resolver that answers edge.example.test with A 127.0.0.1 and, while
// aaaa is set, AAAA ::1.
func dualStackEdge(t *testing.T) (port string, v6 net.Listener, resolver string, aaaa *atomic.Bool) {
	t.Helper()
	var v4 net.Listener
	var err error
	for range 20 {
		if v4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		port = strconv.Itoa(v4.Addr().(*net.TCPAddr).Port)
		if v6, err = net.Listen("tcp6", "[::1]:"+port); err == nil {
			break
		}
		v4.Close()
	}
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: no IPv6 loopback here (%v): dual stack not tested", err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	for _, ln := range []net.Listener{v4, v6} {
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	aaaa = &atomic.Bool{}
	aaaa.Store(true)
	r, err := peers.DNS(dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		hdr := dns.RR_Header{Name: q.Question[0].Name, Class: dns.ClassINET, Ttl: 5}
		switch q.Question[0].Qtype {
		case dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeAAAA:
			if aaaa.Load() {
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IPv6loopback})
			}
		}
		w.WriteMsg(m)
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return port, v6, r.Addr, aaaa
}

// Each family of a dual-stack edge is probed on its own: IPv6 broken
// while IPv4 answers shows as the IPv6 hop failing, and a name without
// AAAA records fails the IPv6 hop saying so.
func TestEachAddressFamilyIsProbedOnItsOwn(t *testing.T) {
	port, v6, resolver, aaaa := dualStackEdge(t)
	tg := func(family string) hop.Target {
		return hop.Target{Address: "edge.example.test:" + port, Host: "edge.example.test", Scheme: "http", Path: "/",
			Family: family, Resolver: resolver}
	}
	r4 := run(t, hop.KindHTTP, tg("ipv4"), 5*time.Second)
	r6 := run(t, hop.KindHTTP, tg("ipv6"), 5*time.Second)
	wantOK(t, r4)
	wantOK(t, r6)
	if r4.Details["remote"] != "127.0.0.1:"+port || r6.Details["remote"] != "[::1]:"+port {
		t.Errorf("remotes %q and %q, want one per family", r4.Details["remote"], r6.Details["remote"])
	}
	v6.Close() // IPv6 transit broken
	wantOK(t, run(t, hop.KindHTTP, tg("ipv4"), 5*time.Second))
	wantFail(t, run(t, hop.KindHTTP, tg("ipv6"), 5*time.Second), "[::1]:"+port)
	aaaa.Store(false) // the AAAA alias is missing
	wantFail(t, run(t, hop.KindTCP, tg("ipv6"), 5*time.Second), "edge.example.test has no IPv6 address (AAAA record)")
	// An IP address is of one family.
	wantFail(t, run(t, hop.KindTCP, hop.Target{Address: "127.0.0.1:" + port, Family: "ipv6"}, 5*time.Second), "127.0.0.1 is not an IPv6 address")
}

package testkit

import (
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/internal/peers"
)

// DualStackEdge serves h on 127.0.0.1 and ::1 at one port until the test
// ends, and returns the port and the ::1 listener (closing it breaks
// IPv6). Where the machine has no IPv6 loopback the test is skipped
// loudly, naming what was not tested.
func DualStackEdge(t *testing.T, h http.Handler, what string) (port string, v6 net.Listener) {
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
		t.Skipf("SKIPPED LOUDLY: no IPv6 loopback here (%v): %s was not tested", err, what)
	}
	for _, ln := range []net.Listener{v4, v6} {
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	return port, v6
}

// DualStackResolver is a DNS server on loopback, stopped when the test
// ends, that answers every name with A 127.0.0.1 and, while aaaa is
// set, AAAA ::1. It returns its address.
func DualStackResolver(t *testing.T, aaaa *atomic.Bool) string {
	t.Helper()
	r, err := peers.DNS(dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		hdr := dns.RR_Header{Name: q.Question[0].Name, Class: dns.ClassINET, Ttl: 5, Rrtype: q.Question[0].Qtype}
		switch q.Question[0].Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeAAAA:
			if aaaa.Load() {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IPv6loopback})
			}
		}
		w.WriteMsg(m)
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r.Addr
}

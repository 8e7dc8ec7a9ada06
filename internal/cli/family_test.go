package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/internal/cli"
	"github.com/allinx/hopprobe/internal/peers"
)

// On a dual-stack route, IPv6 broken while IPv4 answers is a walk whose
// first failing hop is the edge's IPv6 hop, and the IPv4 hop stays ok:
// the edge answers on 127.0.0.1 and ::1, a DNS stand-in (the vantage's
// resolver) gives the name both families, and then the ::1 listener
// goes. Limited to IPv4 (family: on the entry), the same walk passes.
func TestAnIPv6OutageIsItsOwnFirstFailingHop(t *testing.T) {
	var v4, v6 net.Listener
	var err error
	for range 20 {
		if v4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if v6, err = net.Listen("tcp6", "[::1]:"+strconv.Itoa(v4.Addr().(*net.TCPAddr).Port)); err == nil {
			break
		}
		v4.Close()
	}
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: no IPv6 loopback here (%v): the dual-stack walk was not tested", err)
	}
	port := strconv.Itoa(v4.Addr().(*net.TCPAddr).Port)
	edge := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	for _, ln := range []net.Listener{v4, v6} {
		srv := &http.Server{Handler: edge}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	resolver, err := peers.DNS(dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		hdr := dns.RR_Header{Name: q.Question[0].Name, Class: dns.ClassINET, Ttl: 5, Rrtype: q.Question[0].Qtype}
		switch q.Question[0].Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IPv6loopback})
		}
		w.WriteMsg(m)
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer resolver.Stop()
	topo := func(entryFamily string) string {
		path := filepath.Join(t.TempDir(), "topology.yaml")
		os.WriteFile(path, []byte(fmt.Sprintf(`vantage: cluster
vantages:
  cluster: {resolver: %q}
entries:
  - name: public
    family: %q
    hops:
      - {name: edge, address: "edge.example.test:%s"}
routes:
  - hosts: [edge.example.test]
    path: /*
    service: ns/app:8080
    probe: {path: /health, dual_stack: true}
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: "127.0.0.1:%s"}]}
`, resolver.Addr, entryFamily, port, port)), 0o644)
		return path
	}
	dual := topo("")
	if code, out, errs := probe(t, "--config", dual, "--path", "edge.example.test/"); code != cli.ExitOK ||
		!hopLine(out, "edge-ipv4", " ok ") || !hopLine(out, "edge-ipv6", " ok ") {
		t.Fatalf("both families up: exit %d\n%s%s", code, out, errs)
	}
	v6.Close()
	code, out, errs := probe(t, "--config", dual, "--path", "edge.example.test/")
	if code != cli.ExitBroken || !strings.Contains(out, "first failing hop: edge-ipv6") || !hopLine(out, "edge-ipv4", " ok ") {
		t.Errorf("IPv6 down: exit %d, want edge-ipv6 first failing and edge-ipv4 ok:\n%s%s", code, out, errs)
	}
	if code, out, errs := probe(t, "--config", topo("ipv4"), "--path", "edge.example.test/"); code != cli.ExitOK || strings.Contains(out, "edge-ipv6") {
		t.Errorf("the entry limited to IPv4: exit %d\n%s%s", code, out, errs)
	}
}

// Two shards of probe serve on one topology walk disjoint halves of it
// that together are all of it.
func TestShardsOfServeWalkDisjointHalves(t *testing.T) {
	cfgPath, _ := startDemo(t)
	ids := func(listen string) []string {
		var out []string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			var doc struct{ Paths []exporter.PathStatus }
			if json.Unmarshal([]byte(get(t, "http://"+listen+"/api/v1/paths")), &doc) == nil && len(doc.Paths) > 0 {
				for _, p := range doc.Paths {
					out = append(out, p.ID)
				}
				return out
			}
		}
		t.Fatal("no paths listed")
		return nil
	}
	total := len(ids(serveFast(t, cfgPath, io.Discard)))
	a := ids(serveFast(t, cfgPath, io.Discard, "--shard", "0/2"))
	b := ids(serveFast(t, cfgPath, io.Discard, "--shard", "1/2"))
	if len(a)+len(b) != total || len(a) == 0 || len(b) == 0 {
		t.Errorf("shards walk %d and %d paths of %d", len(a), len(b), total)
	}
	for _, id := range a {
		if slices.Contains(b, id) {
			t.Errorf("%s is in both shards", id)
		}
	}
}

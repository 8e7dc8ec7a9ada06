package probes_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/probes"
)

// The registry is the one table of kinds: what a topology may name as a
// port's or a route's protocol, and how every kind's hops are described,
// come from it. A kind the registry does not offer for ports is refused
// with the list it does offer.
func TestTheRegistryDrivesTheTopology(t *testing.T) {
	load := func(portProto, routeProto string) error {
		t.Helper()
		doc := "vantage: cluster\n" +
			"entries: [{name: edge, hops: [{name: cloudfront, scheme: https, address: 127.0.0.1:443}]}]\n" +
			"services: [{name: app, namespace: ns, type: ClusterIP, ports: [{name: p, port: 8080, protocol: " + portProto + "}]}]\n" +
			"routes: [{hosts: [api.example.test], path: /, entries: [edge], service: ns/app:8080, protocol: " + routeProto + "}]\n"
		file := filepath.Join(t.TempDir(), "t.yaml")
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := config.Load(file)
		return err
	}
	ports, routes := 0, 0
	for _, k := range probes.Kinds() {
		portErr, routeErr := load(string(k), "http"), load("http", string(k))
		if portErr == nil {
			ports++
		} else if !strings.Contains(portErr.Error(), `protocol "`+string(k)+`" of ns/app must be one of`) {
			t.Errorf("port protocol %s: %v", k, portErr)
		}
		if routeErr == nil {
			routes++
			if portErr != nil {
				t.Errorf("%s may be a route's protocol but not a port's", k)
			}
		}
	}
	if ports != 3 || routes != 2 {
		t.Errorf("the registry offers %d port and %d route protocols; the topology documents use http, websocket and tcp ports and http and websocket routes", ports, routes)
	}
	if err := load("spdy", "http"); err == nil || !strings.Contains(err.Error(), "must be one of http, tcp, websocket") {
		t.Errorf("an unknown port protocol: %v", err)
	}
	target := &hop.Target{Address: "10.0.0.1:443", Host: "api.example.test", Scheme: "https", Path: "/x", Resolver: "10.0.0.2:53"}
	for k, want := range map[hop.Kind]string{
		hop.KindDNS: "resolve api.example.test (10.0.0.2:53)", hop.KindHTTP: "https://api.example.test/x via 10.0.0.1:443",
		hop.KindTLS: "TLS 10.0.0.1:443 (SNI api.example.test)", hop.KindRedis: "10.0.0.1:443",
	} {
		if got := hop.Describe(k, target); got != want {
			t.Errorf("a %s hop is described as %q, want %q", k, got, want)
		}
	}
	for _, k := range probes.Kinds() {
		if !hasChange(hop.ChangesOf(k), "certificate") {
			t.Errorf("a %s hop that spoke TLS would not report a new certificate", k)
		}
	}
	if !hasChange(hop.ChangesOf(hop.KindEtcd), "leader") || !hasChange(hop.ChangesOf(hop.KindDNS), "dns_answer") {
		t.Error("the kinds' own evidence changes are not registered")
	}
}

func hasChange(cs []hop.Change, name string) bool {
	for _, c := range cs {
		if c.Name == name {
			return true
		}
	}
	return false
}

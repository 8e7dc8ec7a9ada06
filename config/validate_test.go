package config_test

import (
	"strings"
	"testing"

	"github.com/allinx/hopprobe/config"
)

// An unknown name where a service or a store is referenced comes with
// the nearest known ones; a name nothing is near gets no guess.
func TestUnknownReferencesSuggestTheNearest(t *testing.T) {
	_, err := config.Parse("t.yaml", []byte(`vantage: cluster
routes:
  - hosts: [a.test]
    path: /*
    service: ns/ap:8080
  - hosts: [b.test]
    path: /*
    service: ns/zzzzzzzz:8080
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: "127.0.0.1:1"}], depends_on: [cahce]}
stores:
  - {name: cache, kind: redis, address: "127.0.0.1:2"}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`t.yaml:10: service ns/app depends on store "cahce", which is not defined under stores; did you mean cache?`,
		`t.yaml:5: route a.test/* goes to ns/ap, which is not defined under services; did you mean ns/app?`,
		`t.yaml:8: route b.test/* goes to ns/zzzzzzzz, which is not defined under services` + "\n",
	} {
		if !strings.Contains(err.Error()+"\n", want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// A YAML mistake is shown where it is, with a caret, even where yaml.v3
// notices it a line later or at the end of the file.
func TestYAMLMistakesArePointedAt(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"a:\n  b: 1\n c: 2\n", "t.yaml:3: not valid YAML: did not find expected key (noticed at line 2)\n     3 |  c: 2\n       |  ^ indented by 1, which no enclosing block uses"},
		{"a: \"x\nb: 3\n", "t.yaml:1: not valid YAML: found unexpected end of stream (noticed at line 3)\n     1 | a: \"x\n       |    ^ this quote is not closed on its line"},
		{"routes:\n  - hosts: [a.test\n    path: /*\n", "     2 |   - hosts: [a.test\n       |            ^ this bracket is not closed on its line"},
		{"a:\n\tb: 1\n", "t.yaml:2: not valid YAML: found character that cannot start any token\n     2 | \tb: 1\n       | ^ a tab in the indentation; YAML indents with spaces"},
	} {
		_, err := config.Parse("t.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
}

// Unknown keys and what validation finds come in one pass, in file order.
func TestUnknownKeysAndValidationInOnePass(t *testing.T) {
	_, err := config.Parse("t.yaml", []byte(`vantage: cluster
defaults:
  intervall: 5s
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: htp, address: "127.0.0.1:1"}]}
`))
	want := "t.yaml:3: unknown key \"intervall\" in a defaults\nt.yaml:5: protocol \"htp\" of ns/app must be one of"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v\nwant %s…", err, want)
	}
}

// HTTP versions a hop must speak: known ones, once each, h2 and h3 only
// over TLS, and not on a WebSocket route.
func TestRequiredProtocolsAreChecked(t *testing.T) {
	_, err := config.Parse("t.yaml", []byte(`vantage: cluster
entries:
  - name: public
    hops:
      - {name: cloudfront, scheme: https, address: "127.0.0.1:1", protocols: [h2, h3, h2]}
  - name: plain
    hops:
      - {name: alb, scheme: http, address: "127.0.0.1:2", protocols: [h2, spdy]}
routes:
  - hosts: [a.test]
    path: /*
    service: ns/app:8080
    entries: [public]
    probe: {protocols: [h3]}
  - hosts: [b.test]
    path: /ws
    service: ns/app:8080
    protocol: websocket
    entries: [public]
    probe: {protocols: [h2]}
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: "127.0.0.1:3"}]}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`t.yaml:5: protocol "h2" is listed twice`,
		`t.yaml:8: protocol h2 needs TLS: only a hop with scheme https can be asked for it`,
		`t.yaml:8: protocol "spdy" must be one of http/1.1, h2, h3`,
		`t.yaml:20: protocols apply to http routes; a WebSocket probe upgrades an HTTP/1.1 connection`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "t.yaml:14") {
		t.Errorf("h3 over an https entry is allowed:\n%v", err)
	}
}

// A store's allow list holds host:port or IP prefixes, never user
// information.
func TestStoreAllowListIsChecked(t *testing.T) {
	_, err := config.Parse("t.yaml", []byte(`vantage: cluster
stores:
  - name: cache
    kind: redis
    address: "127.0.0.1:2"
    allow: [10.20.0.0/16, "master.aie.prod:6379", nope, "u:p@h:1"]
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`t.yaml:6: allowed address (host:port, or an IP prefix such as 10.20.0.0/16) "nope" must be host:port`,
		`t.yaml:6: allowed address (host:port, or an IP prefix such as 10.20.0.0/16) contains user information`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Count(err.Error(), "\n")+1 != 2 {
		t.Errorf("want exactly two problems:\n%v", err)
	}
}

// Address families and Alt-Svc requirements take known values only.
func TestFamilyAndAltSvcAreChecked(t *testing.T) {
	_, err := config.Parse("t.yaml", []byte(`vantage: cluster
entries:
  - name: public
    family: ipv5
    hops:
      - {name: cloudfront, scheme: https, address: "127.0.0.1:1", family: v6, alt_svc: quic}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`t.yaml:4: family "ipv5" must be ipv4 or ipv6`,
		`t.yaml:6: family "v6" must be ipv4 or ipv6`,
		`t.yaml:6: alt_svc "quic" must be one of http/1.1, h2, h3`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

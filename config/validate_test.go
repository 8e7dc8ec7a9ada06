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

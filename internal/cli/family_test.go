package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allinx/hopprobe/internal/cli"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/status"
)

// On a dual-stack route, IPv6 broken while IPv4 answers is a walk whose
// first failing hop is the edge's IPv6 hop, and the IPv4 hop stays ok:
// the edge answers on 127.0.0.1 and ::1, a DNS stand-in (the vantage's
// resolver) gives the name both families, and then the ::1 listener
// goes. Limited to IPv4 (family: on the entry), the same walk passes.
func TestAnIPv6OutageIsItsOwnFirstFailingHop(t *testing.T) {
	port, v6 := testkit.DualStackEdge(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) }),
		"the dual-stack walk")
	var aaaa atomic.Bool
	aaaa.Store(true)
	resolver := testkit.DualStackResolver(t, &aaaa)
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
`, resolver, entryFamily, port, port)), 0o644)
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
			var doc struct{ Paths []status.PathStatus }
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

// --shard ordinal/N takes the shard from a StatefulSet pod's ordinal,
// modulo N: six pods of three shards are two replicas of each.
func TestShardFromTheStatefulSetOrdinal(t *testing.T) {
	for host, want := range map[string]int{"hopprobe-0": 0, "hopprobe-2": 2, "hopprobe-3": 0, "probe-helm-hopprobe-5": 2} {
		i, n, err := cli.ParseShard("ordinal/3", host)
		if err != nil || i != want || n != 3 {
			t.Errorf("%s: shard %d/%d (%v), want %d/3", host, i, n, err, want)
		}
	}
	for _, bad := range [][2]string{{"ordinal/3", "laptop"}, {"ordinal/3", "hopprobe-x"}, {"ordinal/0", "hopprobe-1"}, {"3/3", ""}, {"-1/2", ""}} {
		if _, _, err := cli.ParseShard(bad[0], bad[1]); err == nil || !strings.Contains(err.Error(), "--shard") {
			t.Errorf("--shard %s on host %q: %v, want an error naming the flag", bad[0], bad[1], err)
		}
	}
}

//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/allinx/hopprobe/internal/kubetest"
)

// settle is serve's --discover-settle here; within is how long a change
// may take to show: the settle time, a walk (1 s interval), and room for
// a loaded 2-core machine.
const (
	settle = 500 * time.Millisecond
	within = 45 * time.Second
)

func podHop(pod string) string {
	return fmt.Sprintf(`{hop="pod/%s",path="api.allinpro.com/*",vantage="cluster"}`, pod)
}

func nodeHop(node string, port int) string {
	return fmt.Sprintf(`{hop="%s:%d",path="nodeport/landry/landry-brokerserver-web",vantage="cluster"}`, node, port)
}

// An unchanged path's hop: nothing discovery sees changes it.
const steadyProbes = `hopprobe_hop_probes_total{hop="service",path="api.allinpro.com/futures/ws*",vantage="cluster",result="success"}`

func podProbes(pod string) string {
	return fmt.Sprintf(`hopprobe_hop_probes_total{hop="pod/%s",path="api.allinpro.com/*",vantage="cluster",result="success"}`, pod)
}

// hopsOf is the hop names of a path in /api/v1/paths.
func (s *server) hopsOf(t *testing.T, path string) []string {
	t.Helper()
	body, err := s.get("/api/v1/paths")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths []struct {
			ID   string
			Hops []struct{ Name, Verdict string }
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range doc.Paths {
		if p.ID == path {
			for _, h := range p.Hops {
				out = append(out, h.Name+"="+h.Verdict)
			}
		}
	}
	return out
}

// waitHops waits until the path's hops in /api/v1/paths include every
// name=verdict in want and no hop named in gone.
func (s *server) waitHops(t *testing.T, path string, want []string, gone ...string) {
	t.Helper()
	var hops []string
	s.waitFor(t, lazy(func() string {
		return fmt.Sprintf("%s: hops %v without %v (last seen %v)", path, want, gone, hops)
	}), within, func() bool {
		hops = s.hopsOf(t, path)
		for _, w := range want {
			if !slices.Contains(hops, w) {
				return false
			}
		}
		for _, g := range gone {
			if slices.ContainsFunc(hops, func(h string) bool { return strings.HasPrefix(h, g+"=") }) {
				return false
			}
		}
		return true
	})
}

// Discovery follows the real API: pods and nodes come and go, a pod
// turns not ready, a Service is deleted and recreated, a node is
// cordoned, a node port moves; and through an API server restart the
// prober keeps probing what it last saw, says it is out of sync, and
// catches up.
func testDiscovery(t *testing.T, c *cluster, l *lab) {
	ctx := t.Context()
	kc := c.serviceAccountKubeconfig(t)
	s := startServe(t, kc, "--config", l.cfg, "--cluster", "--discover", "--discover-settle", settle.String(), "--drift-every", "1h")
	const spot, broker = "api.allinpro.com/*", "nodeport/landry/landry-brokerserver-web"

	s.waitMetric(t, "hopprobe_discovery_synced", within, is(1))
	s.waitHops(t, spot, []string{"pod/spotapi-a=ok", "pod/spotapi-b=ok", "service=ok"})
	s.waitHops(t, broker, []string{fmt.Sprintf("node-a:%d=ok", nodePort), fmt.Sprintf("node-b:%d=ok", nodePort)})
	s.waitMetric(t, "hopprobe_hop_success"+podHop("spotapi-a"), within, is(1))
	s.waitMetric(t, "hopprobe_hop_success"+nodeHop("node-b", nodePort), within, is(1))
	s.waitMetric(t, `hopprobe_path_success{namespace="landry",path="api.allinpro.com/*",service="landry-spotapi-web",vantage="cluster"}`, within, is(1))
	steady := s.waitMetric(t, steadyProbes, within, func(v float64) bool { return v > 0 })

	slices := c.cs.DiscoveryV1().EndpointSlices("landry")
	update := func(what string, ready ...string) {
		t.Helper()
		sl, err := slices.Get(ctx, "landry-spotapi-web-x1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := spotapiSlice(ready...)
		sl.Endpoints = want.Endpoints
		if _, err := slices.Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	t.Log("scale up: spotapi-c joins")
	update("scale up", "spotapi-a", "spotapi-b", "spotapi-c")
	s.waitHops(t, spot, []string{"pod/spotapi-c=ok"})
	s.waitMetric(t, "hopprobe_hop_success"+podHop("spotapi-c"), within, is(1))
	s.waitMetric(t, `hopprobe_discovery_endpoints{state="ready"}`, within, is(3))

	t.Log("scale down: spotapi-c leaves, and its series with it")
	update("scale down", "spotapi-a", "spotapi-b")
	s.waitHops(t, spot, []string{"pod/spotapi-a=ok"}, "pod/spotapi-c")
	s.waitFor(t, "spotapi-c's series to go", within, func() bool {
		body, _ := s.get("/metrics")
		return body != "" && !strings.Contains(body, `hop="pod/spotapi-c"`)
	})

	t.Log("spotapi-b turns not ready: listed, not probed")
	sl, err := slices.Get(ctx, "landry-spotapi-web-x1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sl.Endpoints[1].Conditions.Ready = new(false)
	if _, err := slices.Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitHops(t, spot, []string{"pod/spotapi-b=skipped"})
	s.waitMetric(t, `hopprobe_discovery_endpoints{state="not_ready"}`, within, is(1))
	s.waitMetric(t, "hopprobe_hop_skipped"+podHop("spotapi-b"), within, is(1))

	t.Log("the Service is deleted: its pods' hops go; recreated: they come back")
	svcs := c.cs.CoreV1().Services("landry")
	svc, err := svcs.Get(ctx, "landry-spotapi-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svcs.Delete(ctx, svc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitHops(t, spot, []string{"service=ok"}, "pod/spotapi-a", "pod/spotapi-b")
	svc = labInventory().Services[0].DeepCopy()
	if _, err := svcs.Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitHops(t, spot, []string{"pod/spotapi-a=ok", "pod/spotapi-b=skipped"})

	t.Log("node-c joins, then is cordoned: still probed, counted as cordoned")
	if err := c.createNode(ctx, *kubetest.ReadyNode("node-c", nodes["node-c"])); err != nil {
		t.Fatal(err)
	}
	s.waitHops(t, broker, []string{fmt.Sprintf("node-c:%d=ok", nodePort)})
	s.waitMetric(t, "hopprobe_discovery_nodes", within, is(3))
	node, err := c.cs.CoreV1().Nodes().Get(ctx, "node-c", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Spec.Unschedulable = true
	if _, err := c.cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitMetric(t, "hopprobe_discovery_nodes_cordoned", within, is(1))
	s.waitHops(t, broker, []string{fmt.Sprintf("node-c:%d=ok", nodePort)})

	t.Log("the node port moves: every node's hop follows it")
	bsvc, err := svcs.Get(ctx, "landry-brokerserver-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bsvc.Spec.Ports[0].NodePort = movedNodePort
	if _, err := svcs.Update(ctx, bsvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitHops(t, broker, []string{fmt.Sprintf("node-a:%d=ok", movedNodePort), fmt.Sprintf("node-c:%d=ok", movedNodePort)},
		fmt.Sprintf("node-a:%d", nodePort))
	s.waitMetric(t, "hopprobe_hop_success"+nodeHop("node-b", movedNodePort), within, is(1))

	// The unchanged path kept its series through every change: its probe
	// counter only grew.
	if v := s.waitMetric(t, steadyProbes, within, func(float64) bool { return true }); v <= steady {
		t.Errorf("the unchanged path's probe counter went from %v to %v", steady, v)
	}

	t.Log("the API server stops: the prober says so and keeps probing the last inventory")
	before := s.waitMetric(t, podProbes("spotapi-a"), within, func(float64) bool { return true })
	c.stopAPIServer()
	s.waitMetric(t, "hopprobe_discovery_synced", within, is(0))
	s.waitMetric(t, podProbes("spotapi-a"), within, func(v float64) bool { return v >= before+3 })
	if !strings.Contains(s.log.String(), "discovery cannot reach the API server; probing the last inventory it saw") {
		t.Errorf("no log line says discovery lost the API server")
	}
	// What the prober saw is gone from etcd's history meanwhile: the
	// restarted API server answers its watches "too old resource
	// version", and the informers can only go on by listing again.
	if err := c.bumpEtcd(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.startAPIServer(); err != nil {
		t.Fatal(err)
	}
	s.waitMetric(t, "hopprobe_discovery_synced", 2*within, is(1))
	t.Log("after the restart, changes flow again")
	update("scale up after the restart", "spotapi-a", "spotapi-b", "spotapi-c")
	s.waitHops(t, spot, []string{"pod/spotapi-c=ok"})
}

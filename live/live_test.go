package live_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/live"
	"github.com/allinx/hopprobe/targets"
)

func pathByID(t *testing.T, paths []*targets.Path, id string) *targets.Path {
	t.Helper()
	for _, p := range paths {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("no path %s", id)
	return nil
}

func hopNames(p *targets.Path) []string {
	var out []string
	for _, h := range p.Hops {
		out = append(out, h.Name)
	}
	return out
}

func TestLiveFromTheDocumentedInventory(t *testing.T) {
	cfg := allinx(t)
	seen := live.LiveFrom(fixture(t, "inventory.json", func() []byte { return kubeList(t, cfg, nil) }))
	if len(seen.Nodes) != 3 || seen.Nodes[0].InternalIP != "10.0.10.11" {
		t.Fatalf("nodes: %+v", seen.Nodes)
	}
	ws := seen.Services["morph/morph-futuresws-app"]
	if ws == nil || len(ws.Endpoints) != 2 {
		t.Fatalf("futuresws endpoints: %+v", ws)
	}
	for _, e := range ws.Endpoints {
		if !e.Ready || e.Ports[8080] != 8080 || !strings.HasPrefix(e.Pod, "morph-futuresws-app-") || e.Node == "" {
			t.Errorf("endpoint %+v", e)
		}
	}
	// A two-port Service maps each port through its name.
	if e := seen.Services["landry/landry-trans-web"].Endpoints[0]; e.Ports[8080] != 8080 || e.Ports[9000] != 9000 {
		t.Errorf("trans-web ports: %v", e.Ports)
	}
	if np := seen.Services["landry/landry-trans-web"].NodePorts; np[8080] != 31603 || np[9000] != 31562 {
		t.Errorf("trans-web node ports: %v", np)
	}
	nodes, ready, notReady, omitted := seen.Documented(cfg).Counts()
	if nodes != 3 || ready != 2*len(seen.Services) || notReady != 0 || omitted != 0 {
		t.Errorf("counts: %d nodes, %d ready, %d not ready, %d omitted", nodes, ready, notReady, omitted)
	}
}

// With discovery, a path through a Service gets one hop per pod, probed
// like the Service at the pod's address; the Service hop depends on its
// pods and the pods on the Service's stores.
func TestExpandLiveAddsAHopPerPod(t *testing.T) {
	cfg := allinx(t)
	seen := live.LiveFrom(fixture(t, "inventory.json", func() []byte { return kubeList(t, cfg, nil) }))
	paths, err := targets.ExpandLive(cfg, config.VantageCluster, seen)
	if err != nil {
		t.Fatal(err)
	}
	p := pathByID(t, paths, "api.allinpro.com/futures/ws*")
	names := hopNames(p)
	at := func(name string) int {
		i := slices.Index(names, name)
		if i < 0 {
			t.Fatalf("no hop %s in %v", name, names)
		}
		return i
	}
	svc, store := at("service"), at("futuresnewredis")
	eps := seen.Services["morph/morph-futuresws-app"].Endpoints
	for _, e := range eps {
		i := at("pod/" + e.Pod)
		h := p.Hops[i]
		if h.Kind != hop.KindWebSocket || h.Target.Address != e.IP+":8080" || h.Target.Path != "/futures/ws" ||
			h.Node != "morph/morph-futuresws-app" || h.Skip != "" {
			t.Errorf("pod hop %+v", h)
		}
		if !slices.Contains(p.Hops[svc].DependsOn, i) {
			t.Errorf("the service hop does not depend on %s", h.Name)
		}
		if !slices.Contains(h.DependsOn, store) {
			t.Errorf("%s does not depend on its store", h.Name)
		}
		if i < svc || i > store {
			t.Errorf("%s at %d is not between the service (%d) and its store (%d)", h.Name, i, svc, store)
		}
	}
	// Without discovery the same path has no pod hops.
	plain, _ := targets.Expand(cfg, config.VantageCluster)
	if n := len(pathByID(t, plain, p.ID).Hops); n != len(p.Hops)-len(eps) {
		t.Errorf("documented path has %d hops, live %d, with %d pods", n, len(p.Hops), len(eps))
	}

	// A Service that no route reaches: a pod hop per pod and port.
	sp := pathByID(t, paths, "svc/landry/landry-ces-tradesummary")
	pods := 0
	for _, h := range sp.Hops {
		if strings.HasPrefix(h.Name, "pod/") {
			pods++
			if !strings.HasSuffix(h.Name, "/port-7519") || h.Kind != hop.KindTCP || !strings.HasSuffix(h.Target.Address, ":7519") {
				t.Errorf("service path pod hop %+v", h)
			}
		}
	}
	if pods != 2 {
		t.Errorf("ces-tradesummary: %d pod hops in %v", pods, hopNames(sp))
	}
}

// NodePort paths follow the live nodes and node ports: a hop per Ready
// node at the node port the cluster really opened.
func TestExpandLiveNodePortsFollowTheCluster(t *testing.T) {
	cfg := allinx(t)
	docs, _ := targets.Expand(cfg, config.VantageCluster)
	if h := pathByID(t, docs, "nodeport/landry/landry-trans-web").Hops; len(h) != 1 || h[0].Skip == "" {
		t.Fatalf("without nodes documented the NodePort path is one skipped hop, got %+v", h)
	}
	inv := fixture(t, "drifted.json", func() []byte { return kubeList(t, cfg, plant) })
	// One node goes NotReady, one has an external address.
	inv.Nodes[2].Status.Conditions[0].Status = corev1.ConditionFalse
	inv.Nodes[1].Status.Addresses = append(inv.Nodes[1].Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.7"})
	seen := live.LiveFrom(inv)
	paths, err := targets.ExpandLive(cfg, config.VantageCluster, seen)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, h := range pathByID(t, paths, "nodeport/landry/landry-trans-web").Hops {
		got[h.Name] = h.Target.Address
	}
	want := map[string]string{ // 8080's node port moved to 31999 live (planted)
		"ip-10-0-10-11.ec2.internal:31999": "10.0.10.11:31999", "ip-10-0-10-11.ec2.internal:31562": "10.0.10.11:31562",
		"ip-10-0-10-12.ec2.internal:31999": "10.0.10.12:31999", "ip-10-0-10-12.ec2.internal:31562": "10.0.10.12:31562",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cluster vantage node port hops:\n got %v\nwant %v", got, want)
	}
	// From outside, a node's external address is the one to try.
	ext, _ := targets.ExpandLive(cfg, "external", seen)
	for _, h := range pathByID(t, ext, "nodeport/landry/landry-trans-web").Hops {
		if strings.HasPrefix(h.Name, "ip-10-0-10-12") && !strings.HasPrefix(h.Target.Address, "203.0.113.7:") {
			t.Errorf("external vantage probes %s at %s", h.Name, h.Target.Address)
		}
		if !h.Target.ExpectUnreachable {
			t.Errorf("%s must be expected unreachable from outside", h.Name)
		}
	}
	// Pods are not probed from outside the cluster.
	for _, p := range ext {
		for _, h := range p.Hops {
			if strings.HasPrefix(h.Name, "pod/") {
				t.Fatalf("external path %s has pod hop %s", p.ID, h.Name)
			}
		}
	}
	// Not-ready pods stay visible but are not probed.
	np := pathByID(t, paths, "*.aie.prod/*")
	pods := 0
	for _, h := range np.Hops {
		if strings.HasPrefix(h.Name, "pod/") {
			pods++
			if !strings.Contains(h.Skip, "not ready") {
				t.Errorf("not-ready pod hop %s is probed (skip %q)", h.Name, h.Skip)
			}
		}
	}
	if pods != 2 {
		t.Errorf("narwhal-accesshttp has %d pod hops, want its 2 not-ready pods", pods)
	}
}

func TestLiveCapsPodsPerService(t *testing.T) {
	inv := &live.KubeInventory{Services: []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "ns"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}}}
	sl := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "big-1", Namespace: "ns",
		Labels: map[string]string{discoveryv1.LabelServiceName: "big"}},
		AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: new(""), Port: new(int32(8080))}}}
	for i := range targets.MaxEndpointsPerService + 8 {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.1.0.%d", i)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: fmt.Sprintf("big-%03d", i)}})
	}
	// The same pod in a second slice (mid-rebalance) counts once, and so
	// does a pod in the IPv6 slice of a dual-stack Service: at its IPv4
	// address.
	dup := sl.DeepCopy()
	dup.Name, dup.Endpoints = "big-2", dup.Endpoints[:1]
	v6 := sl.DeepCopy()
	v6.Name, v6.AddressType, v6.Endpoints = "big-v6", discoveryv1.AddressTypeIPv6, v6.Endpoints[:2]
	v6.Endpoints[0].Addresses = []string{"2001:db8::1"}
	v6.Endpoints[1].Addresses = []string{"fd00::2"}
	inv.EndpointSlices = []discoveryv1.EndpointSlice{*v6, sl, *dup}
	ls := live.LiveFrom(inv).Services["ns/big"]
	if len(ls.Endpoints) != targets.MaxEndpointsPerService || ls.Omitted != 8 {
		t.Fatalf("%d endpoints, %d omitted", len(ls.Endpoints), ls.Omitted)
	}
	if ls.Endpoints[0].Pod != "big-000" || ls.Endpoints[1].Pod != "big-001" || ls.Endpoints[0].Ports[80] != 8080 ||
		ls.Endpoints[0].IP != "10.1.0.0" || ls.Endpoints[1].IP != "10.1.0.1" {
		t.Errorf("first endpoints %+v", ls.Endpoints[:2])
	}
}

// What one discovery change costs on the documented topology with ten
// pods behind every Service: reducing the inventory and rebuilding every
// path, against building the documented paths alone.
func BenchmarkDiscoveryChange(b *testing.B) {
	cfg := allinx(b)
	inv := fixture(b, "inventory.json", func() []byte { return kubeList(b, cfg, nil) })
	for i := range inv.EndpointSlices {
		sl := &inv.EndpointSlices[i]
		one := sl.Endpoints[0]
		sl.Endpoints = nil
		for n := range 10 {
			e := *one.DeepCopy()
			e.Addresses = []string{fmt.Sprintf("10.9.%d.%d", i, n)}
			e.TargetRef.Name = fmt.Sprintf("%s-%d", sl.Name, n)
			sl.Endpoints = append(sl.Endpoints, e)
		}
	}
	countHops := func(paths []*targets.Path) (n int) {
		for _, p := range paths {
			n += len(p.Hops)
		}
		return n
	}
	b.Run("documented", func(b *testing.B) {
		hops := 0
		for b.Loop() {
			paths, err := targets.Expand(cfg, config.VantageCluster)
			if err != nil {
				b.Fatal(err)
			}
			hops = countHops(paths)
		}
		b.ReportMetric(float64(hops), "hops")
	})
	b.Run("live", func(b *testing.B) {
		hops := 0
		for b.Loop() {
			paths, err := targets.ExpandLive(cfg, config.VantageCluster, live.LiveFrom(inv).Documented(cfg))
			if err != nil {
				b.Fatal(err)
			}
			hops = countHops(paths)
		}
		b.ReportMetric(float64(hops), "hops")
	})
}

// A pod's name becomes a hop name and a label value: a long one is cut,
// and two long ones stay distinct.
func TestLongPodNamesAreBoundedAndDistinct(t *testing.T) {
	long := strings.Repeat("p", 200)
	ready, name, port := true, "http", int32(8080)
	inv := &live.KubeInventory{
		Services: []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}},
		EndpointSlices: []discoveryv1.EndpointSlice{{
			ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "app"}},
			Ports:      []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}, TargetRef: &corev1.ObjectReference{Name: long + "a"}},
				{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}, TargetRef: &corev1.ObjectReference{Name: long + "b"}},
			},
		}},
	}
	eps := live.LiveFrom(inv).Services["ns/app"].Endpoints
	if len(eps) != 2 || eps[0].Pod == eps[1].Pod || len(eps[0].Pod) > 96 || len(eps[1].Pod) > 96 {
		t.Fatalf("pods %q", []string{eps[0].Pod, eps[1].Pod})
	}
}

package live_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/kubetest"
	"github.com/allinx/hopprobe/live"
)

var update = flag.Bool("update", false, "rewrite testdata/{kube,apisix}/*.json from config/allinx.yaml")

// nodeNames are the nodes the documents list (topology nodes:).
var nodeNames = []string{"ip-10-0-10-11.ec2.internal", "ip-10-0-10-12.ec2.internal", "ip-10-0-10-13.ec2.internal"}

// kubeList builds, in kubectl's `get svc,endpointslices,nodes -A -o json`
// shape, the cluster that the documents describe, then lets edit plant
// differences in it.
func kubeList(t testing.TB, cfg *config.Config, edit func(svcs map[string]*corev1.Service, eps map[string]*discoveryv1.EndpointSlice)) []byte {
	t.Helper()
	svcs := map[string]*corev1.Service{}
	eps := map[string]*discoveryv1.EndpointSlice{}
	var order []string
	yes, tcp := true, corev1.ProtocolTCP
	podIP := 10
	for _, s := range cfg.Services {
		if s.Type == "None" {
			continue
		}
		ls := &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceType(s.Type), ClusterIP: s.ClusterIP,
				Selector: map[string]string{"app": s.Name}}}
		ep := &discoveryv1.EndpointSlice{TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta:  metav1.ObjectMeta{Name: s.Name + "-x1", Namespace: s.Namespace, Labels: map[string]string{discoveryv1.LabelServiceName: s.Name}},
			AddressType: discoveryv1.AddressTypeIPv4}
		for i, p := range s.Ports {
			// Kubernetes requires names on a Service with several ports,
			// and the EndpointSlice ports carry the same names.
			name := p.Name
			if name == "" && len(s.Ports) > 1 {
				name = fmt.Sprintf("p%d", i)
			}
			ls.Spec.Ports = append(ls.Spec.Ports, corev1.ServicePort{Name: name, Port: int32(p.Port), NodePort: int32(p.NodePort),
				Protocol: tcp, TargetPort: intstr.FromInt32(int32(p.Port))})
			ep.Ports = append(ep.Ports, discoveryv1.EndpointPort{Name: &name, Port: new(int32(p.Port)), Protocol: &tcp})
		}
		// Two pods, on two of the three nodes.
		for i, suffix := range []string{"7d9f8-abcde", "7d9f8-fghij"} {
			podIP++
			ep.Endpoints = append(ep.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.0.%d.%d", 100+podIP/250, podIP%250)},
				Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: new(false)},
				NodeName:   new(nodeNames[(podIP+i)%len(nodeNames)]),
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: s.Namespace, Name: s.Name + "-" + suffix},
			})
		}
		key := s.Key()
		svcs[key], eps[key] = ls, ep
		order = append(order, key)
	}
	before := map[string]bool{}
	for k := range svcs {
		before[k] = true
	}
	if edit != nil {
		edit(svcs, eps)
	}
	for k := range svcs {
		if !before[k] {
			order = append(order, k)
		}
	}
	items := []any{}
	for _, k := range order {
		if s := svcs[k]; s != nil {
			items = append(items, s)
		}
	}
	for _, k := range order {
		if e := eps[k]; e != nil {
			items = append(items, e)
		}
	}
	for i, name := range nodeNames {
		items = append(items, &corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{
				Addresses: []corev1.NodeAddress{
					{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.0.10.%d", 11+i)},
					{Type: corev1.NodeHostName, Address: name},
				},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}},
			}})
	}
	out, err := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items, "metadata": map[string]string{"resourceVersion": ""}}, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// plant makes exactly six differences from the documents.
func plant(svcs map[string]*corev1.Service, eps map[string]*discoveryv1.EndpointSlice) {
	delete(svcs, "landry/landry-userserver-web") // 1 missing live
	delete(eps, "landry/landry-userserver-web")
	dbg := svcs["landry/landry-cobocb-web"].DeepCopy() // 2 undocumented
	dbg.Name = "landry-debug-web"
	dbg.Spec.ClusterIP = "172.20.255.1" // a ClusterIP belongs to one Service
	svcs["landry/landry-debug-web"] = dbg
	gw := svcs["landry/landry-gateway-web"] // 3 an extra live port
	// A Service with two ports names both (the API server refuses it
	// otherwise), and its EndpointSlice carries the same names.
	gw.Spec.Ports[0].Name = "http"
	eps["landry/landry-gateway-web"].Ports[0].Name = new("http")
	gw.Spec.Ports = append(gw.Spec.Ports, corev1.ServicePort{Name: "debug", Port: 9999, Protocol: corev1.ProtocolTCP})
	svcs["landry/landry-trans-web"].Spec.Ports[0].NodePort = 31999   // 4 node port moved
	for i := range eps["morph/morph-narwhal-accesshttp"].Endpoints { // 5 nobody ready behind it
		eps["morph/morph-narwhal-accesshttp"].Endpoints[i].Conditions.Ready = new(false)
	}
	cobogw := svcs["landry/landry-cobogw-web"] // 6 internal service exposed
	cobogw.Spec.Type = corev1.ServiceTypeNodePort
	cobogw.Spec.Ports[0].NodePort = 30555
}

// fixtureBytes returns the checked-in fixture at path, failing when it is
// stale against what build makes from config/allinx.yaml (-update
// rewrites it).
func fixtureBytes(t testing.TB, path string, build func() []byte) []byte {
	t.Helper()
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, build(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./targets -run Drift -update writes it)", err)
	}
	if !bytes.Equal(b, build()) {
		t.Fatalf("%s is stale against config/allinx.yaml: go test ./targets -run Drift -update", path)
	}
	return b
}

func fixture(t testing.TB, name string, build func() []byte) *live.KubeInventory {
	t.Helper()
	inv, err := live.ReadKubeList(bytes.NewReader(fixtureBytes(t, "testdata/kube/"+name, build)))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestDriftAgainstTheDocumentedInventoryIsEmpty(t *testing.T) {
	cfg := allinx(t)
	inv := fixture(t, "inventory.json", func() []byte { return kubeList(t, cfg, nil) })
	if d := live.KubeDrift(cfg, inv); len(d) != 0 {
		t.Fatalf("the documents' own inventory drifts: %+v", d)
	}
	svcs, nodes := live.ImportKube(inv, nil)
	if len(nodes) != 3 || len(svcs) != len(inv.Services) {
		t.Fatalf("import: %d services, %d nodes", len(svcs), len(nodes))
	}
}

func TestDriftReportsExactlyThePlantedDifferences(t *testing.T) {
	cfg := allinx(t)
	inv := fixture(t, "drifted.json", func() []byte { return kubeList(t, cfg, plant) })
	var got []string
	for _, d := range live.KubeDrift(cfg, inv) {
		got = append(got, d.Kind+" "+d.Subject+": "+d.Detail)
	}
	want := []string{
		"exposed landry/landry-cobogw-web: documented as internal (ClusterIP), live as NodePort",
		"undocumented landry/landry-debug-web: live ClusterIP Service is not in the topology",
		"port-differs landry/landry-gateway-web: live port 9999 is not documented",
		"nodeport-differs landry/landry-trans-web: port 8080: documented node port 31603, live 31999",
		"missing-live landry/landry-userserver-web: documented as ClusterIP, no such Service in the cluster",
		"no-ready-endpoint morph/morph-narwhal-accesshttp: no ready endpoint behind the Service",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("drift\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestReadKubeListRejectsOtherKinds(t *testing.T) {
	_, err := live.ReadKubeList(strings.NewReader(`{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"x"}}]}`))
	if err == nil || !strings.Contains(err.Error(), "item 0 is a Pod") {
		t.Fatalf("err = %v", err)
	}
	if _, err := live.ReadKubeList(strings.NewReader(`{"kind":"Service"}`)); err == nil {
		t.Fatal("a single object is not a kubectl list")
	}
}

// The live path (client-go) sees what kubectl's export shows: the fake
// clientset holds the fixtures' objects and drift is the same.
func TestKubeInventoryFromTheAPIMatchesTheExport(t *testing.T) {
	cfg := allinx(t)
	for file, want := range map[string]int{"inventory.json": 0, "drifted.json": 6} {
		b, err := os.ReadFile("testdata/kube/" + file)
		if err != nil {
			t.Fatal(err)
		}
		exported, err := live.ReadKubeList(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		listed, err := live.KubeInventoryFrom(t.Context(), kubetest.API(fake.NewClientset(apiObjects(exported)...)))
		if err != nil {
			t.Fatal(err)
		}
		if len(listed.Services) != len(exported.Services) || len(listed.Nodes) != 3 {
			t.Fatalf("%s: listed %d services and %d nodes", file, len(listed.Services), len(listed.Nodes))
		}
		if got := len(live.KubeDrift(cfg, listed)); got != want {
			t.Errorf("%s through the API: %d drift items, want %d", file, got, want)
		}
	}
}

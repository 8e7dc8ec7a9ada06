package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/allinx/hopprobe/internal/cli"
	"github.com/allinx/hopprobe/internal/kubetest"
	"github.com/allinx/hopprobe/internal/testkit"
)

// spotapiPods is landry-spotapi-web with two pods that answer on one port
// at their own IPs: spotapi-a (127.0.0.1) is healthy, nothing answers for
// spotapi-b (127.0.0.2).
func spotapiPods(t *testing.T) (*corev1.Service, *discoveryv1.EndpointSlice) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pod := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})}
	go pod.Serve(ln)
	t.Cleanup(func() { pod.Close() })
	podPort := int32(ln.Addr().(*net.TCPAddr).Port)
	svc := &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: "landry-spotapi-web", Namespace: "landry"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app": "spotapi"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}
	slice := &discoveryv1.EndpointSlice{TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta:  metav1.ObjectMeta{Name: "landry-spotapi-web-x1", Namespace: "landry", Labels: map[string]string{discoveryv1.LabelServiceName: "landry-spotapi-web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: &podPort}},
		Endpoints:   []discoveryv1.Endpoint{kubetest.PodEndpoint("landry", "spotapi-a", "127.0.0.1", true), kubetest.PodEndpoint("landry", "spotapi-b", "127.0.0.2", true)},
	}
	return svc, slice
}

// probe --path with the cluster at hand walks each pod too: the bad pod
// is the first failing hop, the Service and the good pod are ok.
func TestPathWalkWithTheClusterProbesEachPod(t *testing.T) {
	cfgPath, _ := startDemo(t)
	svc, slice := spotapiPods(t)
	b, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": []any{svc, slice}})
	if err != nil {
		t.Fatal(err)
	}
	kube := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(kube, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := probe(t, "--config", cfgPath, "--path", "api.allinpro.com/", "--kube", kube)
	if code != cli.ExitBroken || !strings.Contains(out, "first failing hop: pod/spotapi-b") {
		t.Fatalf("exit %d, want pod/spotapi-b named first:\n%s%s", code, out, errs)
	}
	for _, ok := range []string{"service", "pod/spotapi-a"} {
		if !hopLine(out, ok, " ok ") {
			t.Errorf("%s must be ok:\n%s", ok, out)
		}
	}
	// The same walk without the cluster knows no pods, and is healthy.
	code, out, _ = probe(t, "--config", cfgPath, "--path", "api.allinpro.com/")
	if code != cli.ExitOK || strings.Contains(out, "pod/") {
		t.Fatalf("without the cluster: exit %d\n%s", code, out)
	}
}

// With --discover, serve follows the cluster through informers: a hop per
// pod behind a Service, so that one bad pod behind a healthy Service is
// its own failed hop; a pod that goes away takes its hop with it; a node
// that joins gets its NodePort hop.
func TestServeDiscoversPodsAndNodes(t *testing.T) {
	cfgPath, _ := startDemo(t)
	nodePort := addNodePortService(t, cfgPath)
	spotapi, slice := spotapiPods(t)
	cs, watching := kubetest.Clientset(3, spotapi, slice,
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "landry-brokerserver-web", Namespace: "landry"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Name: "http", Port: 8080, NodePort: int32(nodePort)}}}},
		kubetest.ReadyNode("node-a", "127.0.0.1"),
	)
	t.Cleanup(cli.UseKubeClient(cs)) // after serve stops (cleanups run last first)
	logs := &testkit.Buffer{}
	listen := serveFast(t, cfgPath, logs, "--cluster", "--discover", "--discover-settle", "200ms", "--drift-every", "1h")

	route := `namespace="landry",path="api.allinpro.com/*",service="landry-spotapi-web",vantage="cluster"}`
	hop := func(name, _ string) string {
		return fmt.Sprintf(`{hop=%q,path="api.allinpro.com/*",vantage="cluster"}`, name)
	}
	nodeHop := func(node string) string {
		return fmt.Sprintf(`{hop="%s:%d",path="nodeport/landry/landry-brokerserver-web",vantage="cluster"}`, node, nodePort)
	}
	is := func(v float64) func(float64) bool { return func(got float64) bool { return got == v } }
	waitMetric(t, listen, "hopprobe_discovery_synced ", is(1))
	waitMetric(t, listen, "hopprobe_hop_success"+hop("pod/spotapi-b", "http"), is(0))
	waitMetric(t, listen, "hopprobe_hop_first_failing"+hop("pod/spotapi-b", "http"), is(1))
	waitMetric(t, listen, "hopprobe_hop_success"+hop("pod/spotapi-a", "http"), is(1))
	waitMetric(t, listen, "hopprobe_hop_success"+hop("service", "http"), is(1))
	waitMetric(t, listen, "hopprobe_path_success{"+route, is(0))
	waitMetric(t, listen, "hopprobe_hop_success"+nodeHop("node-a"), is(1))
	waitMetric(t, listen, `hopprobe_discovery_endpoints{state="ready"}`, is(2))
	waitMetric(t, listen, "hopprobe_discovery_nodes ", is(1))

	// The bad pod is replaced by nothing (scaled down), and a node joins:
	// spotapi-b's hop goes, the path heals, node-b's NodePort hop comes
	// (and fails: nothing serves 127.0.0.2).
	<-watching
	slice.Endpoints = slice.Endpoints[:1]
	if _, err := cs.DiscoveryV1().EndpointSlices("landry").Update(t.Context(), slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Nodes().Create(t.Context(), kubetest.ReadyNode("node-b", "127.0.0.2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, listen, "hopprobe_path_success{"+route, is(1))
	waitMetric(t, listen, "hopprobe_hop_success"+nodeHop("node-b"), is(0))
	waitMetric(t, listen, "hopprobe_discovery_nodes ", is(2))
	waitMetric(t, listen, `hopprobe_discovery_endpoints{state="ready"}`, is(1))
	if body := get(t, "http://"+listen+"/metrics"); strings.Contains(body, `hop="pod/spotapi-b"`) {
		t.Error("the scaled-down pod still has series")
	}
	if n := waitMetric(t, listen, "hopprobe_discovery_path_changes_total ", func(float64) bool { return true }); n < 2 {
		t.Errorf("%v path changes, want the first list and the update", n)
	}
	if !strings.Contains(logs.String(), "discovery changed the paths") {
		t.Errorf("no log line for the change:\n%s", logs.String())
	}
}

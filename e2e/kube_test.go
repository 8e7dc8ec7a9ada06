//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/demo"
	"github.com/allinx/hopprobe/internal/kubetest"
	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/live"
)

// One control plane, one story: the manifests go in, the shipped
// ServiceAccount reads the cluster, discovery follows it through
// changes and an API server restart. Later parts need the earlier ones'
// objects, so they run in order as subtests.
func TestAgainstARealAPIServer(t *testing.T) {
	c := theCluster(t)
	if !t.Run("manifests", func(t *testing.T) { testManifests(t, c) }) {
		t.Fatal("the rest needs the manifests' ServiceAccount and ClusterRole")
	}
	t.Run("helm", func(t *testing.T) { testHelm(t, c) })
	t.Run("drift", func(t *testing.T) { testDrift(t, c) })
	l := newLab(t, c)
	t.Run("discovery", func(t *testing.T) { testDiscovery(t, c, l) })
	t.Run("rbac", func(t *testing.T) { testRBAC(t, c, l) })
	// Last: it stops one of the lab's stores.
	t.Run("servicemonitor", func(t *testing.T) { testServiceMonitor(t, c, l) })
}

// Every overlay applies server-side with strict field validation, into
// a namespace that enforces the restricted Pod Security level, and the
// pod each Deployment makes is admitted by it.
func testManifests(t *testing.T, c *cluster) {
	ctx := t.Context()
	a, err := c.applier()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.installCRDs(ctx, a); err != nil {
		t.Fatal(err)
	}
	// cluster-discovery last: the later parts run with its RBAC.
	for _, overlay := range []string{"cluster", "external", "cluster-drift", "cluster-discovery"} {
		objs, err := render(overlay)
		if err != nil {
			t.Fatal(err)
		}
		var deployments []*unstructured.Unstructured
		for _, obj := range objs {
			if err := a.apply(ctx, obj); err != nil {
				t.Errorf("overlay %s does not apply: %v", overlay, err)
			}
			if obj.GetKind() == "Deployment" {
				deployments = append(deployments, obj)
			}
		}
		if len(deployments) != 1 {
			t.Fatalf("overlay %s: %d Deployments, want 1", overlay, len(deployments))
		}
		checkPodAdmitted(t, c, overlay, deployments[0].GetNamespace(), deployments[0].GetName())
	}
	ns, err := c.cs.CoreV1().Namespaces().Get(ctx, "hopprobe", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace hopprobe enforces Pod Security level %q, want restricted", got)
	}
}

// checkPodAdmitted creates, dry-run (no scheduler runs), the pod the
// Deployment as stored makes; and, so that the check is known to bite,
// the same pod allowed to escalate privileges, which must be refused.
func checkPodAdmitted(t *testing.T, c *cluster, overlay, ns, name string) {
	t.Helper()
	d, err := c.cs.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkTemplateAdmitted(t, c, overlay, ns, "Deployment "+name, d.Spec.Template)
}

// checkTemplateAdmitted creates a pod from tmpl (dry run) in ns, which
// enforces Pod Security restricted: it is admitted, and the same pod
// allowed to escalate privileges is refused.
func checkTemplateAdmitted(t *testing.T, c *cluster, overlay, ns, owner string, tmpl corev1.PodTemplateSpec) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: ns,
		Labels: tmpl.Labels, Annotations: tmpl.Annotations}, Spec: tmpl.Spec}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	if _, err := c.cs.CoreV1().Pods(ns).Create(t.Context(), pod, dry); err != nil {
		t.Errorf("overlay %s: the pod of %s is refused: %v", overlay, owner, err)
	}
	bad := pod.DeepCopy()
	if bad.Spec.Containers[0].SecurityContext == nil {
		bad.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{}
	}
	bad.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = new(true)
	_, err := c.cs.CoreV1().Pods(ns).Create(t.Context(), bad, dry)
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Errorf("overlay %s: a pod that may escalate privileges is not refused by Pod Security admission: %v", overlay, err)
	}
}

// Drift against real objects: the documented inventory reports nothing
// and imports back to the documented Services and Nodes; the drifted one
// reports exactly its six planted differences.
func testDrift(t *testing.T, c *cluster) {
	ctx := t.Context()
	kc := c.serviceAccountKubeconfig(t)
	inv := readInventory(t, "inventory.json")
	if err := c.createInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	if got := drift(t, kc, 0); len(got) != 0 {
		t.Errorf("the documented inventory drifts:\n%s", strings.Join(got, "\n"))
	}

	code, out, errs := runProbe(t, kc, "import", "kube", "--cluster", "--config", "../config/allinx.yaml")
	if code != 0 {
		t.Fatalf("import kube --cluster: exit %d: %s", code, errs)
	}
	imported := filepath.Join(t.TempDir(), "imported.yaml")
	if err := os.WriteFile(imported, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(imported)
	if err != nil {
		t.Fatalf("the imported topology does not load: %v\n%s", err, out)
	}
	documented, err := config.Load("../config/allinx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := sameInventory(documented, readInventory(t, "inventory.json"), got); err != nil {
		t.Errorf("import kube --cluster does not round-trip the documented inventory: %v", err)
	}

	if err := c.deleteInventory(ctx); err != nil {
		t.Fatal(err)
	}
	drifted := readInventory(t, "drifted.json")
	if err := c.createInventory(ctx, drifted); err != nil {
		t.Fatal(err)
	}
	// What the export itself drifts by: exactly the six planted
	// differences, which live's TestDriftReportsExactlyThePlantedDifferences
	// spells out.
	var want []string
	for _, d := range live.KubeDrift(documented, drifted) {
		want = append(want, d.Kind+" "+d.Subject+": "+d.Detail)
	}
	if len(want) != 6 {
		t.Fatalf("the drifted export drifts by %d differences, not its six planted ones", len(want))
	}
	if got := drift(t, kc, 1); !slices.Equal(got, want) {
		t.Errorf("drift against the drifted objects\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := c.deleteInventory(ctx); err != nil {
		t.Fatal(err)
	}
}

// drift runs `probe drift --cluster` and returns its items as lines.
func drift(t *testing.T, kubeconfig string, wantCode int) []string {
	t.Helper()
	code, out, errs := runProbe(t, kubeconfig, "drift", "--cluster", "--config", "../config/allinx.yaml", "-o", "json")
	var doc struct {
		Drift []struct{ Kind, Subject, Detail string }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != wantCode {
		t.Fatalf("drift --cluster: exit %d, want %d (%v)\n%s%s", code, wantCode, err, out, errs)
	}
	var lines []string
	for _, d := range doc.Drift {
		lines = append(lines, d.Kind+" "+d.Subject+": "+d.Detail)
	}
	return lines
}

// sameInventory compares what import made of the cluster with the
// documents' Services (those that are Kubernetes Services: type None
// marks workloads without one) and with the cluster's Nodes: types,
// ClusterIPs, ports and node ports, names and addresses.
func sameInventory(want *config.Config, inv *live.KubeInventory, got *config.Config) error {
	var problems []string
	documented := 0
	for _, s := range want.Services {
		if s.Type == "None" {
			continue
		}
		documented++
		g := got.FindService(s.Key())
		if g == nil {
			problems = append(problems, s.Key()+" is missing")
			continue
		}
		if g.Type != s.Type || (s.ClusterIP != "" && g.ClusterIP != s.ClusterIP) {
			problems = append(problems, fmt.Sprintf("%s: %s %s, documented %s %s", s.Key(), g.Type, g.ClusterIP, s.Type, s.ClusterIP))
		}
		if a, b := portsOf(&s), portsOf(g); !slices.Equal(a, b) {
			problems = append(problems, fmt.Sprintf("%s: ports %v, documented %v", s.Key(), b, a))
		}
	}
	if len(got.Services) != documented {
		problems = append(problems, fmt.Sprintf("%d Services, %d documented", len(got.Services), documented))
	}
	var wantNodes, gotNodes []string
	for _, n := range inv.Nodes {
		wantNodes = append(wantNodes, n.Name+"="+n.Status.Addresses[0].Address)
	}
	for _, n := range got.Nodes {
		gotNodes = append(gotNodes, n.Name+"="+n.Address)
	}
	slices.Sort(wantNodes)
	slices.Sort(gotNodes)
	if !slices.Equal(wantNodes, gotNodes) {
		problems = append(problems, fmt.Sprintf("nodes %v, in the cluster %v", gotNodes, wantNodes))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

func portsOf(s *config.Service) []string {
	var out []string
	for _, p := range s.Ports {
		out = append(out, fmt.Sprintf("%d/%d", p.Port, p.NodePort))
	}
	slices.Sort(out)
	return out
}

// lab is the documented demo topology in the namespace: its stand-ins on
// loopback (internal/demo), and in the API its spot API Service with
// pods on 10.244/16 and a NodePort Service on nodes at 10.245/16, whose
// addresses answer like the demo's stand-ins.
type lab struct {
	cfg  string     // the topology file
	demo *demo.Demo // its stand-ins
}

const (
	nodePort      = 30864
	movedNodePort = 31999
)

var (
	pods  = map[string]string{"spotapi-a": "10.244.1.1", "spotapi-b": "10.244.1.2", "spotapi-c": "10.244.1.3"}
	nodes = map[string]string{"node-a": "10.245.0.11", "node-b": "10.245.0.12", "node-c": "10.245.0.13"}
)

func newLab(t *testing.T, c *cluster) *lab {
	t.Helper()
	src, err := os.ReadFile("../config/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	brokerAddr, err := peers.FreePort() // the demo serves the Service there
	if err != nil {
		t.Fatal(err)
	}
	path, d, err := demo.StartCopy(src, t.TempDir(), func(text string) string {
		text = strings.Replace(text, "interval: 5s", "interval: 1s", 1)
		text = strings.Replace(text, "timeout: 2s", "timeout: 1s", 1)
		return strings.Replace(text, "services:\n", fmt.Sprintf(`services:
  - name: landry-brokerserver-web
    namespace: landry
    type: NodePort
    ports: [{name: http, port: 8080, node_port: %d, protocol: http, address: %s}]
`, nodePort, brokerAddr), 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	l := &lab{cfg: path, demo: d}
	for _, ip := range pods {
		serveOn(t, ip+":8080", demo.Service("landry-spotapi-web"))
	}
	for _, ip := range nodes {
		for _, p := range []int{nodePort, movedNodePort} {
			serveOn(t, fmt.Sprintf("%s:%d", ip, p), demo.Service("landry-brokerserver-web"))
		}
	}

	ctx := t.Context()
	if err := c.deleteInventory(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.createInventory(ctx, labInventory()); err != nil {
		t.Fatal(err)
	}
	return l
}

// labInventory: spotapi-a and -b behind landry-spotapi-web, the NodePort
// Service, node-a and node-b Ready.
func labInventory() *live.KubeInventory {
	svcs := []corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "landry-spotapi-web", Namespace: "landry"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app": "spotapi"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "landry-brokerserver-web", Namespace: "landry"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "broker"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 8080, NodePort: nodePort}}}},
	}
	return &live.KubeInventory{Services: svcs, EndpointSlices: []discoveryv1.EndpointSlice{spotapiSlice("spotapi-a", "spotapi-b")},
		Nodes: []corev1.Node{*kubetest.ReadyNode("node-a", nodes["node-a"]), *kubetest.ReadyNode("node-b", nodes["node-b"])}}
}

func spotapiSlice(ready ...string) discoveryv1.EndpointSlice {
	s := discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "landry-spotapi-web-x1", Namespace: "landry", Labels: map[string]string{discoveryv1.LabelServiceName: "landry-spotapi-web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}},
	}
	for _, p := range ready {
		s.Endpoints = append(s.Endpoints, kubetest.PodEndpoint("landry", p, pods[p], true))
	}
	return s
}

// serveOn serves h on addr until the test ends and returns the address.
func serveOn(t *testing.T, addr string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

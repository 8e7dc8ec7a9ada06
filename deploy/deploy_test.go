package deploy_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/targets"
)

var update = flag.Bool("update", false, "rewrite the generated copies (topology ConfigMap source, PrometheusRule)")

// The kustomize base cannot read ../../config, so it holds a copy of the
// production topology; the copy must never drift.
func TestTopologyCopyMatchesConfig(t *testing.T) {
	src, err := os.ReadFile("../config/allinx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dst := "kubernetes/base/allinx.yaml"
	if *update {
		if err := os.WriteFile(dst, src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("%s differs from config/allinx.yaml: run `make deploy-sync`", dst)
	}
}

// The PrometheusRule is rules.yaml wrapped for the Prometheus Operator;
// rules.yaml is the one that promtool tests.
func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	raw, err := os.ReadFile("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec monv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(raw, &spec); err != nil {
		t.Fatalf("prometheus/rules.yaml: %v", err)
	}
	path := "kubernetes/base/prometheusrule.yaml"
	if *update {
		pr := monv1.PrometheusRule{Spec: spec}
		pr.APIVersion, pr.Kind, pr.Name = "monitoring.coreos.com/v1", "PrometheusRule", "hopprobe"
		out, err := yaml.Marshal(pr)
		if err != nil {
			t.Fatal(err)
		}
		out = bytes.Replace(out, []byte("  creationTimestamp: null\n"), nil, 1)
		header := "# Generated from deploy/prometheus/rules.yaml by `make deploy-sync`; edit that file.\n"
		if err := os.WriteFile(path, append([]byte(header), out...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var pr monv1.PrometheusRule
	decodeFile(t, path, &pr)
	if !reflect.DeepEqual(pr.Spec, spec) {
		t.Fatalf("%s is not prometheus/rules.yaml: run `make deploy-sync`", path)
	}
}

func decodeFile(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// rendered is one overlay after `kustomize build`, decoded strictly into
// the Kubernetes API types: a misspelt or misplaced field fails here, not
// at `kubectl apply` time.
type rendered struct {
	deployments  []*appsv1.Deployment
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	netpols      []*networkingv1.NetworkPolicy
	monitors     []*monv1.ServiceMonitor
	rules        []*monv1.PrometheusRule
	clusterRoles []*rbacv1.ClusterRole
	other        int
}

func render(t *testing.T, overlay string) *rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("kubernetes/overlays", overlay))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", overlay, err)
	}
	r := &rendered{}
	for _, res := range rm.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var obj any
		switch res.GetKind() {
		case "Deployment":
			d := &appsv1.Deployment{}
			r.deployments, obj = append(r.deployments, d), d
		case "Service":
			s := &corev1.Service{}
			r.services, obj = append(r.services, s), s
		case "ConfigMap":
			c := &corev1.ConfigMap{}
			r.configMaps, obj = append(r.configMaps, c), c
		case "NetworkPolicy":
			n := &networkingv1.NetworkPolicy{}
			r.netpols, obj = append(r.netpols, n), n
		case "ServiceMonitor":
			m := &monv1.ServiceMonitor{}
			r.monitors, obj = append(r.monitors, m), m
		case "PrometheusRule":
			p := &monv1.PrometheusRule{}
			r.rules, obj = append(r.rules, p), p
		case "Namespace":
			obj = &corev1.Namespace{}
		case "ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "ClusterRole":
			c := &rbacv1.ClusterRole{}
			r.clusterRoles, obj = append(r.clusterRoles, c), c
		case "ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		default:
			t.Fatalf("%s renders a %s, which this test does not know how to check", overlay, res.GetKind())
		}
		if err := yaml.UnmarshalStrict(y, obj); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly: %v", overlay, res.GetKind(), res.GetName(), err)
		}
		if !strings.HasPrefix(res.GetKind(), "Cluster") && res.GetKind() != "Namespace" && res.GetNamespace() != "hopprobe" {
			t.Errorf("%s: %s %s is in namespace %q, want hopprobe", overlay, res.GetKind(), res.GetName(), res.GetNamespace())
		}
		r.other++
	}
	return r
}

func TestOverlaysRenderAndHarden(t *testing.T) {
	for _, overlay := range []string{"cluster", "external", "cluster-drift", "cluster-discovery"} {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			vantage, _, _ := strings.Cut(overlay, "-")
			if len(r.deployments) != 1 || len(r.services) != 2 || len(r.configMaps) != 1 || len(r.netpols) != 1 ||
				len(r.monitors) != 1 || len(r.rules) != 1 {
				t.Fatalf("want one each of Deployment, ConfigMap, NetworkPolicy, ServiceMonitor, PrometheusRule and two Services (scraped, replicas); got %d %d %d %d %d %d",
					len(r.deployments), len(r.services), len(r.configMaps), len(r.netpols), len(r.monitors), len(r.rules))
			}
			d := r.deployments[0]
			checkHardened(t, d)
			args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
			if !strings.Contains(args, "--vantage="+vantage) {
				t.Errorf("the %s overlay runs %q", overlay, args)
			}
			// The ConfigMap the pod mounts is the topology, and it loads.
			cm := r.configMaps[0]
			if got := d.Spec.Template.Spec.Volumes[0].ConfigMap.Name; got != cm.Name {
				t.Errorf("pod mounts ConfigMap %s, kustomize generated %s", got, cm.Name)
			}
			cfgPath := filepath.Join(t.TempDir(), "allinx.yaml")
			os.WriteFile(cfgPath, []byte(cm.Data["allinx.yaml"]), 0o644)
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatalf("the ConfigMap's topology does not load: %v", err)
			}
			checkCredentials(t, vantage, cfg, d)
			checkEgress(t, vantage, cfg, r.netpols[0])
			checkRBAC(t, overlay, d, r.clusterRoles)
			svc, replicaSet := r.services[0], r.services[1]
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				svc, replicaSet = replicaSet, svc
			}
			checkReplicaPhases(t, d, replicaSet)
			// Prometheus finds the Service by its labels and port name.
			sm := r.monitors[0]
			for k, v := range sm.Spec.Selector.MatchLabels {
				if svc.Labels[k] != v {
					t.Errorf("ServiceMonitor selects %s=%s, the Service has %q", k, v, svc.Labels[k])
				}
			}
			if sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name {
				t.Errorf("ServiceMonitor scrapes port %q, the Service names %q", sm.Spec.Endpoints[0].Port, svc.Spec.Ports[0].Name)
			}
		})
	}
}

// checkReplicaPhases: the replicas find their phase in the headless
// Service's DNS answer (internal/replicas), which lists exactly the
// Deployment's pods, and nothing scrapes through it.
func checkReplicaPhases(t *testing.T, d *appsv1.Deployment, replicaSet *corev1.Service) {
	t.Helper()
	if replicaSet.Spec.ClusterIP != corev1.ClusterIPNone || len(replicaSet.Spec.Ports) != 0 {
		t.Errorf("Service %s: want a headless Service without ports, got clusterIP %q and %d ports", replicaSet.Name, replicaSet.Spec.ClusterIP, len(replicaSet.Spec.Ports))
	}
	if !reflect.DeepEqual(replicaSet.Spec.Selector, d.Spec.Selector.MatchLabels) {
		t.Errorf("Service %s selects %v, the Deployment's pods are %v", replicaSet.Name, replicaSet.Spec.Selector, d.Spec.Selector.MatchLabels)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--replicas-dns="+replicaSet.Name) {
		t.Errorf("the prober runs %q, want --replicas-dns=%s", c.Args, replicaSet.Name)
	}
	podIP := false
	for _, e := range c.Env {
		podIP = podIP || (e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP")
	}
	if !podIP {
		t.Error("the prober has no POD_IP from status.podIP: it cannot find itself among the replicas")
	}
}

func checkHardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
		t.Error("pod must set runAsNonRoot")
	}
	if ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod must use the RuntimeDefault seccomp profile")
	}
	readsAPI := slices.Contains(ps.Containers[0].Args, "--cluster")
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken != readsAPI {
		t.Errorf("the service account token must be mounted exactly when the prober reads the API (--cluster: %v)", readsAPI)
	}
	for _, c := range ps.Containers {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Fatalf("container %s has no securityContext", c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("container %s: readOnlyRootFilesystem", c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("container %s: allowPrivilegeEscalation must be false", c.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("container %s: drop ALL capabilities, add none", c.Name)
		case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Errorf("container %s: seccomp RuntimeDefault", c.Name)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("container %s: readiness must be /readyz", c.Name)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("container %s: liveness must be /healthz", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: CPU and memory requests and a memory limit are required", c.Name)
		}
		for _, e := range c.Env {
			if e.Value != "" && strings.Contains(strings.ToUpper(e.Name), "PASSWORD") {
				t.Errorf("container %s: %s is a literal; secrets come from secretKeyRef", c.Name, e.Name)
			}
		}
	}
}

// checkRBAC: no RBAC unless the prober reads the API, and then get and
// list on Services, EndpointSlices and Nodes, plus watch exactly when it
// discovers (informers cannot sync without it).
func checkRBAC(t *testing.T, overlay string, d *appsv1.Deployment, roles []*rbacv1.ClusterRole) {
	t.Helper()
	readsAPI := slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--cluster")
	if !readsAPI {
		if len(roles) > 0 {
			t.Errorf("%s: %d ClusterRoles for a prober that reads nothing from the API", overlay, len(roles))
		}
		return
	}
	if len(roles) != 1 {
		t.Fatalf("%s: want one ClusterRole, got %d", overlay, len(roles))
	}
	want := []string{"list"}
	if slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--discover") {
		want = append(want, "watch")
	}
	granted := map[string][]string{}
	for _, rule := range roles[0].Rules {
		for _, res := range rule.Resources {
			granted[res] = append(granted[res], rule.Verbs...)
		}
	}
	for _, res := range []string{"services", "nodes", "endpointslices"} {
		got := slices.Sorted(slices.Values(granted[res]))
		if !slices.Equal(got, want) {
			t.Errorf("%s: the ClusterRole grants %v on %s, want exactly %v", overlay, got, res, want)
		}
		delete(granted, res)
	}
	for res := range granted {
		t.Errorf("%s: the ClusterRole grants %s", overlay, res)
	}
}

// checkCredentials: every {env: …} secret the topology needs from this
// overlay's vantage is provided from a Secret, and nothing else is.
func checkCredentials(t *testing.T, overlay string, cfg *config.Config, d *appsv1.Deployment) {
	t.Helper()
	env := map[string]*corev1.EnvVar{}
	for i, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = &d.Spec.Template.Spec.Containers[0].Env[i]
	}
	for _, st := range cfg.Stores {
		if st.Password == nil || st.Password.Env == "" {
			continue
		}
		e, ok := env[st.Password.Env]
		reachable := config.Reaches(st.From, overlay)
		switch {
		case reachable && !ok:
			t.Errorf("%s: store %s needs $%s, the Deployment does not set it", overlay, st.Name, st.Password.Env)
		case reachable && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil):
			t.Errorf("%s: $%s must come from a secretKeyRef", overlay, st.Password.Env)
		case !reachable && ok:
			t.Errorf("%s: store %s is not probed from this vantage; $%s must not be handed to it", overlay, st.Name, st.Password.Env)
		}
	}
}

// checkEgress: the NetworkPolicy lets the prober reach every port the
// topology's probed hops use from this vantage.
func checkEgress(t *testing.T, overlay string, cfg *config.Config, np *networkingv1.NetworkPolicy) {
	t.Helper()
	paths, err := targets.Expand(cfg, overlay)
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(port int32) bool {
		for _, rule := range np.Spec.Egress {
			for _, p := range rule.Ports {
				lo := p.Port.IntVal
				hi := lo
				if p.EndPort != nil {
					hi = *p.EndPort
				}
				if (p.Protocol == nil || *p.Protocol == corev1.ProtocolTCP) && port >= lo && port <= hi {
					return true
				}
			}
		}
		return false
	}
	missing := map[string]bool{}
	for _, p := range paths {
		for _, h := range p.Hops {
			if h.Skip != "" || h.Target.Address == "" {
				continue
			}
			var port int32
			if _, err := fmt.Sscanf(h.Target.Address[strings.LastIndex(h.Target.Address, ":")+1:], "%d", &port); err != nil {
				t.Fatalf("hop %s of %s: address %q has no port", h.Name, p.ID, h.Target.Address)
			}
			if !allowed(port) {
				missing[fmt.Sprintf("%d (%s)", port, h.Name)] = true
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: the NetworkPolicy blocks ports the topology probes: %v", overlay, missing)
	}
}

// promtool is the real Prometheus tool: rules must load and their unit
// tests pass.
func TestPromtoolChecksAndTestsTheRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "prometheus/rules.yaml"},
		{"test", "rules", "prometheus/rules_test.yaml"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func promtool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if errors.Is(err, exec.ErrNotFound) {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must have promtool (Debian package prometheus; .ci/run installs it)")
		}
		t.Skip("SKIPPED LOUDLY: promtool not installed (apt-get install prometheus)")
	}
	return bin
}

//go:build e2e

package e2e

// The Prometheus Operator discovers a ServiceMonitor's targets through
// the core/v1 Endpoints API unless told otherwise, so this file makes
// Endpoints as the Endpoints controller would.
//lint:file-ignore SA1019 core/v1 Endpoints is what the operator's default discovery role reads.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/internal/testkit"
)

// The prober's pod in the namespace: the address its Endpoints name, on
// the port the Deployment's container declares, so that Prometheus
// matches the container as it does in a cluster.
const proberPodIP, proberPort = "10.244.9.9", 9115

// Under the Prometheus Operator, the shipped ServiceMonitor as the API
// server stored it: a real Prometheus finds the prober through
// kubernetes_sd_configs against the real API server, with the scrape
// configuration the operator generates (port, path, interval and
// honorLabels from the YAML, its standard target labels), and evaluates
// the shipped rules. A stopped store pages with the documented
// Service's namespace, not the prober's own.
func testServiceMonitor(t *testing.T, c *cluster, l *lab) {
	// Debian's Prometheus has no Kubernetes discovery: make e2e builds one.
	promBin := os.Getenv("HOPPROBE_PROMETHEUS")
	if promBin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("HOPPROBE_PROMETHEUS is not set: run the suite with make e2e, which builds Prometheus with Kubernetes discovery")
		}
		t.Skip("SKIPPED LOUDLY: HOPPROBE_PROMETHEUS is not set: run the suite with make e2e, which builds Prometheus with Kubernetes discovery")
	}
	ctx := t.Context()
	a, err := c.applier()
	if err != nil {
		t.Fatal(err)
	}
	// The lab deleted every Service: the shipped ones go in again.
	objs, err := render("cluster")
	if err != nil {
		t.Fatal(err)
	}
	var deployment *corev1.PodTemplateSpec
	for _, obj := range objs {
		switch obj.GetKind() {
		case "Service", "ServiceMonitor":
			if err := a.apply(ctx, obj); err != nil {
				t.Fatal(err)
			}
		case "Deployment":
			d, err := c.cs.AppsV1().Deployments(obj.GetNamespace()).Get(ctx, obj.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			deployment = &d.Spec.Template
		}
	}
	if deployment == nil {
		t.Fatal("the cluster overlay has no Deployment")
	}
	smRes := schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "servicemonitors"}
	stored, err := a.dyn.Resource(smRes).Namespace("hopprobe").Get(ctx, "hopprobe", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var sm monv1.ServiceMonitor
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(stored.Object, &sm); err != nil {
		t.Fatal(err)
	}

	// What the Deployment's controller and the kubelet would make: a pod
	// of the Deployment's template (no scheduler runs, so it stays
	// Pending, which the operator's relabeling keeps) and the Service's
	// Endpoints naming it, with the prober serving on its address.
	pods := c.cs.CoreV1().Pods("hopprobe")
	pod, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hopprobe-sm-0", Namespace: "hopprobe",
		Labels: deployment.Labels}, Spec: deployment.Spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pods.Delete(ctx, pod.Name, metav1.DeleteOptions{}) })
	eps := c.cs.CoreV1().Endpoints("hopprobe")
	_, err = eps.Create(ctx, &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "hopprobe", Namespace: "hopprobe"},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: proberPodIP, TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "hopprobe", Name: pod.Name, UID: pod.UID}}},
			Ports:     []corev1.EndpointPort{{Name: sm.Spec.Endpoints[0].Port, Port: proberPort, Protocol: corev1.ProtocolTCP}},
		}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eps.Delete(ctx, "hopprobe", metav1.DeleteOptions{}) })

	// The store under the futures WebSocket (namespace morph) is down
	// before the first scrape, so the first scrape already shows it.
	if err := l.demo.Stop("futuresnewredis"); err != nil {
		t.Fatal(err)
	}
	startServeOn(t, c.serviceAccountKubeconfig(t), net.JoinHostPort(proberPodIP, fmt.Sprint(proberPort)), "--config", l.cfg)

	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(c.admin.BearerToken), 0o600); err != nil {
		t.Fatal(err)
	}
	sd := map[string]any{"api_server": "https://" + c.addr, "tls_config": map[string]any{"ca_file": c.pki.CA},
		"authorization": map[string]any{"credentials_file": token}}
	var scrape []any
	for i := range sm.Spec.Endpoints {
		cfg, err := operatorScrapeConfig(&sm, i, sd)
		if err != nil {
			t.Fatal(err)
		}
		scrape = append(scrape, cfg)
	}
	rules, err := os.ReadFile("../deploy/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Only the rules' `for` is shortened (2m to 3s, as deploy's alerting
	// test does): the scrape is the ServiceMonitor's own.
	fast := map[string]string{"2m": "3s", "5m": "5s", "10m": "10s", "15m": "15s", "30m": "30s"}
	shortened := regexp.MustCompile(`(?m)^(\s+for: )(\d+m)$`).ReplaceAllStringFunc(string(rules), func(s string) string {
		i := strings.LastIndex(s, " ")
		return s[:i+1] + fast[s[i+1:]]
	})
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(shortened), 0o644); err != nil {
		t.Fatal(err)
	}
	// JSON is YAML: the configuration is written as the operator's
	// structure marshalled.
	promCfg, err := json.Marshal(map[string]any{
		"global":         map[string]any{"evaluation_interval": "1s"},
		"rule_files":     []string{"rules.yaml"},
		"scrape_configs": scrape,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yaml"), promCfg, 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	promLog := &testkit.Buffer{}
	cmd := exec.Command(promBin, "--config.file", filepath.Join(dir, "prometheus.yaml"),
		"--storage.tsdb.path", filepath.Join(dir, "tsdb"), "--web.listen-address", promAddr)
	cmd.Stdout, cmd.Stderr = promLog, promLog
	prom, err := peers.Start(cmd, promAddr, time.Minute, func() {})
	if err != nil {
		t.Fatalf("prometheus: %v\n%s", err, promLog.String())
	}
	t.Cleanup(func() {
		prom.Stop()
		if t.Failed() {
			t.Logf("prometheus said:\n%s", promLog.String())
		}
	})

	// Discovered, with the operator's target labels: the scrape went
	// through the API server, not a static target.
	var up []map[string]string
	waitProm(t, "Prometheus to scrape the prober it discovered", 90*time.Second, func() bool {
		up = promSeries(promAddr, `up == 1`)
		return len(up) == 1
	}, func() string { return fmt.Sprintf("up: %v; targets: %s", up, promTargets(promAddr)) })
	wantTarget := map[string]string{"job": "hopprobe", "namespace": "hopprobe", "service": "hopprobe", "pod": pod.Name,
		"container": deployment.Spec.Containers[0].Name, "endpoint": sm.Spec.Endpoints[0].Port,
		"instance": net.JoinHostPort(proberPodIP, fmt.Sprint(proberPort))}
	for k, v := range wantTarget {
		if up[0][k] != v {
			t.Errorf("the discovered target has %s=%q, want %q (the operator's target labels): %v", k, up[0][k], v, up[0])
		}
	}

	// The page: the shipped HopprobeFirstFailingHop, for the stopped
	// store, routed by the documented Service's namespace.
	var alerts []map[string]string
	waitProm(t, "a firing HopprobeFirstFailingHop for futuresnewredis", 2*time.Minute, func() bool {
		alerts = promSeries(promAddr, `ALERTS{alertname="HopprobeFirstFailingHop",alertstate="firing",hop="futuresnewredis"}`)
		return len(alerts) > 0
	}, func() string {
		return fmt.Sprintf("alerts %v; first failing hops %v", promSeries(promAddr, `ALERTS`), promSeries(promAddr, `hopprobe_hop_first_failing == 1`))
	})
	for _, a := range alerts {
		if a["namespace"] != "morph" || a["exported_namespace"] != "" {
			t.Errorf("HopprobeFirstFailingHop for futuresnewredis carries namespace=%q exported_namespace=%q, want namespace=\"morph\" (the documented Service's): %v",
				a["namespace"], a["exported_namespace"], a)
		}
	}
	// And every path series keeps its documented namespace and Service.
	paths := promSeries(promAddr, `hopprobe_path_success`)
	if len(paths) == 0 {
		t.Fatal("no hopprobe_path_success series")
	}
	for _, s := range paths {
		if s["namespace"] == "hopprobe" || s["exported_namespace"] != "" || s["exported_service"] != "" || s["service"] == "hopprobe" {
			t.Errorf("a path series lost its documented labels to the target's: %v", s)
		}
	}
	if !slices.ContainsFunc(paths, func(s map[string]string) bool {
		return s["namespace"] == "morph" && s["service"] == "morph-futuresws-app"
	}) {
		t.Errorf("no path series of morph/morph-futuresws-app: %v", paths)
	}
}

// operatorScrapeConfig is the scrape configuration the Prometheus
// Operator generates for endpoint i of a ServiceMonitor (its
// pkg/prometheus/promcfg.go, with the Endpoints role it uses by default),
// for a Prometheus that is not itself a pod: sd says how it reaches the
// API server. Only what the shipped ServiceMonitor uses is covered:
// selector.matchLabels, port, path, interval, scrapeTimeout and
// honorLabels; anything else fails the test rather than be ignored.
func operatorScrapeConfig(sm *monv1.ServiceMonitor, i int, sd map[string]any) (map[string]any, error) {
	ep := sm.Spec.Endpoints[i]
	if len(sm.Spec.Selector.MatchExpressions) > 0 || ep.Port == "" || ep.TargetPort != nil || ep.Scheme != nil ||
		len(ep.RelabelConfigs) > 0 || len(ep.MetricRelabelConfigs) > 0 || sm.Spec.JobLabel != "" || len(sm.Spec.NamespaceSelector.MatchNames) > 0 {
		return nil, fmt.Errorf("the ServiceMonitor uses a field this test's copy of the operator's generator does not cover; extend it: %+v", sm.Spec)
	}
	kube := map[string]any{"role": "endpoints", "namespaces": map[string]any{"names": []string{sm.Namespace}}}
	for k, v := range sd {
		kube[k] = v
	}
	rel := func(source []string, target, regex, replacement string) map[string]any {
		r := map[string]any{"target_label": target}
		if source != nil {
			r["source_labels"] = source
		}
		if regex != "" {
			r["regex"] = regex
		}
		if replacement != "" {
			r["replacement"] = replacement
		}
		return r
	}
	relabel := []any{rel([]string{"job"}, "__tmp_prometheus_job_name", "", "")}
	keys := make([]string, 0, len(sm.Spec.Selector.MatchLabels))
	for k := range sm.Spec.Selector.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		l := sanitize(k)
		relabel = append(relabel, map[string]any{"action": "keep",
			"source_labels": []string{"__meta_kubernetes_service_label_" + l, "__meta_kubernetes_service_labelpresent_" + l},
			"regex":         "(" + sm.Spec.Selector.MatchLabels[k] + ");true"})
	}
	relabel = append(relabel,
		map[string]any{"action": "keep", "source_labels": []string{"__meta_kubernetes_endpoint_port_name"}, "regex": ep.Port},
		map[string]any{"source_labels": []string{"__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"},
			"separator": ";", "regex": "Node;(.*)", "replacement": "${1}", "target_label": "node"},
		map[string]any{"source_labels": []string{"__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"},
			"separator": ";", "regex": "Pod;(.*)", "replacement": "${1}", "target_label": "pod"},
		rel([]string{"__meta_kubernetes_namespace"}, "namespace", "", ""),
		rel([]string{"__meta_kubernetes_service_name"}, "service", "", ""),
		rel([]string{"__meta_kubernetes_pod_name"}, "pod", "", ""),
		rel([]string{"__meta_kubernetes_pod_container_name"}, "container", "", ""),
		map[string]any{"action": "drop", "source_labels": []string{"__meta_kubernetes_pod_phase"}, "regex": "(Failed|Succeeded)"},
		rel([]string{"__meta_kubernetes_service_name"}, "job", "", "${1}"),
		rel(nil, "endpoint", "", ep.Port),
		// One shard: the operator's $(SHARD) is 0.
		map[string]any{"source_labels": []string{"__address__"}, "target_label": "__tmp_hash", "modulus": 1, "action": "hashmod"},
		map[string]any{"source_labels": []string{"__tmp_hash"}, "regex": "0", "action": "keep"},
	)
	cfg := map[string]any{
		"job_name":              fmt.Sprintf("serviceMonitor/%s/%s/%d", sm.Namespace, sm.Name, i),
		"honor_labels":          ep.HonorLabels,
		"kubernetes_sd_configs": []any{kube},
		"relabel_configs":       relabel,
	}
	if ep.Interval != "" {
		cfg["scrape_interval"] = string(ep.Interval)
	}
	if ep.ScrapeTimeout != "" {
		cfg["scrape_timeout"] = string(ep.ScrapeTimeout)
	}
	if ep.Path != "" {
		cfg["metrics_path"] = ep.Path
	}
	return cfg, nil
}

// sanitize is Prometheus' label-name sanitizing of a Kubernetes label key.
func sanitize(k string) string {
	return regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(k, "_")
}

// promSeries is the label sets an instant query returns.
func promSeries(addr, q string) []map[string]string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return nil
	}
	var out []map[string]string
	for _, s := range r.Data.Result {
		out = append(out, s.Metric)
	}
	return out
}

// promTargets is Prometheus' view of its targets, for a failure message.
func promTargets(addr string) string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/api/v1/targets?state=any")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.Status + " " + string(b)
}

// waitProm polls cond until it holds, or fails the test after within
// with what describe says it last saw.
func waitProm(t *testing.T, what string, within time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v: %s", what, within, describe())
		}
	}
}

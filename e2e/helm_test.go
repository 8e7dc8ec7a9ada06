//go:build e2e

package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const chart = "../deploy/helm/hopprobe"

// helm runs the real helm (built by make e2e from its Go module) and
// returns what it printed.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	bin := os.Getenv("HOPPROBE_HELM")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("HOPPROBE_HELM is not set: run the suite with make e2e, which builds helm")
		}
		t.Skip("SKIPPED LOUDLY: HOPPROBE_HELM is not set: run the suite with make e2e, which builds helm")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// helm keeps its caches and repositories under HOME: a fresh one.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errs.String())
	}
	return out.String()
}

// decodeAll reads a multi-document YAML stream into objects.
func decodeAll(t *testing.T, text string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("helm's output does not decode: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// The Helm chart: `helm lint --strict` passes with its defaults and with
// discovery on; its default render is the kustomize cluster overlay's
// objects (Helm's own labels and the ConfigMap's hashed name aside, and
// the Namespace, which a chart does not own); both renders apply
// server-side with strict field validation into a namespace that
// enforces Pod Security restricted, and their pods are admitted.
func testHelm(t *testing.T, c *cluster) {
	discovery, sharded := chart+"/ci/discovery-values.yaml", chart+"/ci/sharded-values.yaml"
	helm(t, "lint", "--strict", chart)
	helm(t, "lint", "--strict", chart, "--values", discovery)
	helm(t, "lint", "--strict", chart, "--values", sharded)

	t.Run("same objects as kustomize", func(t *testing.T) {
		fromHelm := decodeAll(t, helm(t, "template", "hopprobe", chart, "--namespace", "hopprobe"))
		fromKustomize, err := render("cluster")
		if err != nil {
			t.Fatal(err)
		}
		helmObjs, kustomizeObjs := normalized(t, fromHelm, "hopprobe"), normalized(t, fromKustomize, "hopprobe")
		if ns := "Namespace/hopprobe"; kustomizeObjs[ns] == nil {
			t.Errorf("kustomize renders no %s", ns)
		} else {
			delete(kustomizeObjs, ns)
		}
		for _, k := range sortedKeys(kustomizeObjs) {
			h, ok := helmObjs[k]
			if !ok {
				t.Errorf("kustomize renders %s, the chart does not", k)
				continue
			}
			if d := diff("", kustomizeObjs[k], h); len(d) > 0 {
				t.Errorf("%s differs between kustomize and the chart:\n  %s", k, strings.Join(d, "\n  "))
			}
		}
		for _, k := range sortedKeys(helmObjs) {
			if _, ok := kustomizeObjs[k]; !ok {
				t.Errorf("the chart renders %s, kustomize does not", k)
			}
		}
	})

	ctx := t.Context()
	const ns = "hopprobe-helm"
	_, err := c.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.applier()
	if err != nil {
		t.Fatal(err)
	}
	for _, values := range []string{"", discovery, sharded} {
		args := []string{"template", "probe-helm", chart, "--namespace", ns}
		if values != "" {
			args = append(args, "--values", values)
		}
		objs := decodeAll(t, helm(t, args...))
		var kinds []string
		for _, obj := range objs {
			if obj.GetNamespace() == "" && !strings.HasPrefix(obj.GetKind(), "Cluster") {
				obj.SetNamespace(ns) // as helm install puts them
			}
			if err := a.apply(ctx, obj); err != nil {
				t.Errorf("the chart (values %q) does not apply: %v", values, err)
			}
			kinds = append(kinds, obj.GetKind()+"/"+obj.GetName())
		}
		slices.Sort(kinds)
		if values == discovery {
			// Discovery on: the read-only role with watch, bound to the
			// release's ServiceAccount, and the dashboards.
			for _, want := range []string{"ClusterRole/probe-helm-hopprobe-drift", "ClusterRoleBinding/probe-helm-hopprobe-drift", "ConfigMap/probe-helm-hopprobe-dashboards"} {
				if !slices.Contains(kinds, want) {
					t.Errorf("the chart with %s renders no %s: %v", values, want, kinds)
				}
			}
			role, err := c.cs.RbacV1().ClusterRoles().Get(ctx, "probe-helm-hopprobe-drift", metav1.GetOptions{})
			if err == nil && (len(role.Rules) != 2 || !slices.Equal(role.Rules[0].Verbs, []string{"list", "watch"})) {
				t.Errorf("the chart's discovery role is %+v, want list and watch on two rules", role.Rules)
			}
		}
		if values == sharded {
			// Three shards of two replicas: one StatefulSet of six pods,
			// each taking its shard from its ordinal.
			ss, err := c.cs.AppsV1().StatefulSets(ns).Get(ctx, "probe-helm-hopprobe", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the sharded chart renders no StatefulSet: %v (%v)", err, kinds)
			}
			if *ss.Spec.Replicas != 6 || !slices.Contains(ss.Spec.Template.Spec.Containers[0].Args, "--shard=ordinal/3") ||
				ss.Spec.ServiceName != "probe-helm-hopprobe-replicas" {
				t.Errorf("the sharded StatefulSet: %d replicas, args %q, service %q", *ss.Spec.Replicas, ss.Spec.Template.Spec.Containers[0].Args, ss.Spec.ServiceName)
			}
			if slices.Contains(kinds, "Deployment/probe-helm-hopprobe") {
				t.Error("the sharded chart renders the Deployment too")
			}
			checkTemplateAdmitted(t, c, "helm sharded", ns, "StatefulSet probe-helm-hopprobe", ss.Spec.Template)
			continue
		}
		checkPodAdmitted(t, c, "helm "+cmp.Or(values, "defaults"), ns, "probe-helm-hopprobe")
	}
}

// helmBookkeeping are the labels and annotations a chart adds for Helm's
// own sake; kustomize has no release to name.
var helmBookkeeping = []string{"app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/version", "helm.sh/chart", "checksum/topology"}

// hashedConfigMap is the name kustomize's configMapGenerator gives.
var hashedConfigMap = regexp.MustCompile(`^(hopprobe-topology)-[a-z0-9]{10}$`)

// normalized is each object by kind/name, as JSON values, without
// Helm's bookkeeping and with kustomize's hashed ConfigMap name unhashed.
func normalized(t *testing.T, objs []*unstructured.Unstructured, ns string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, o := range objs {
		if o.GetNamespace() == "" && !strings.HasPrefix(o.GetKind(), "Cluster") && o.GetKind() != "Namespace" {
			o.SetNamespace(ns)
		}
		b, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		v = scrub(v)
		name := hashedConfigMap.ReplaceAllString(o.GetName(), "$1")
		out[o.GetKind()+"/"+name] = v
	}
	return out
}

func scrub(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range helmBookkeeping {
			delete(x, k)
		}
		for k, e := range x {
			x[k] = scrub(e)
			if m, ok := x[k].(map[string]any); ok && len(m) == 0 && (k == "annotations" || k == "labels") {
				delete(x, k)
			}
		}
		return x
	case []any:
		for i := range x {
			x[i] = scrub(x[i])
		}
		return x
	case string:
		return hashedConfigMap.ReplaceAllString(x, "$1")
	}
	return v
}

// diff lists where two JSON values differ, by path, at most 20 places.
func diff(path string, a, b any) []string {
	var out []string
	var walk func(string, any, any)
	walk = func(p string, a, b any) {
		if len(out) >= 20 {
			return
		}
		am, aok := a.(map[string]any)
		bm, bok := b.(map[string]any)
		if aok && bok {
			keys := map[string]bool{}
			for k := range am {
				keys[k] = true
			}
			for k := range bm {
				keys[k] = true
			}
			for _, k := range sortedKeys(keys) {
				walk(p+"."+k, am[k], bm[k])
			}
			return
		}
		as, aok := a.([]any)
		bs, bok := b.([]any)
		if aok && bok && len(as) == len(bs) {
			for i := range as {
				walk(fmt.Sprintf("%s[%d]", p, i), as[i], bs[i])
			}
			return
		}
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			out = append(out, fmt.Sprintf("%s: kustomize %.200s, chart %.200s", p, ja, jb))
		}
	}
	walk(path, a, b)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package deploy_test

import (
	"slices"
	"testing"
)

// The Prometheus Operator puts these labels on every target a
// ServiceMonitor finds (plus instance, and node for a Node endpoint).
// The shipped ServiceMonitor honours hopprobe's labels, so that its
// namespace and service (the documented Service's) reach the alerts
// instead of exported_namespace beside namespace="hopprobe". That is
// safe only while hopprobe exports none of the labels that say which
// pod was scraped: honoured, they would overwrite the target's own.
var targetIdentity = []string{"job", "instance", "pod", "container", "endpoint"}

func TestHonoredLabelsLeaveTheTargetAlone(t *testing.T) {
	for _, overlay := range []string{"cluster", "external", "cluster-drift", "cluster-discovery"} {
		r := render(t, overlay)
		for _, sm := range r.monitors {
			for i, ep := range sm.Spec.Endpoints {
				if !ep.HonorLabels {
					t.Errorf("%s: ServiceMonitor %s endpoint %d does not set honorLabels: under the Prometheus Operator "+
						"hopprobe's namespace and service labels would arrive as exported_namespace and exported_service", overlay, sm.Name, i)
				}
			}
		}
	}
	seen := map[string]bool{}
	for _, mf := range gathered(t) {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if slices.Contains(targetIdentity, l.GetName()) {
					t.Errorf("%s carries label %q, which the honoured ServiceMonitor would let overwrite the scraped pod's own", mf.GetName(), l.GetName())
				}
				seen[l.GetName()] = true
			}
		}
	}
	// The labels honouring is for are really there.
	for _, want := range []string{"namespace", "service", "path", "hop"} {
		if !seen[want] {
			t.Errorf("no exported series carries %q; the reason for honorLabels is gone, or the test reads the wrong scrape", want)
		}
	}
}

package live

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/targets"
)

// KubeDrift compares the documented services of the namespaces the
// topology documents with the live ones. Services of type None (cron
// jobs, workers without a Service) are not expected live.
func KubeDrift(cfg *config.Config, inv *KubeInventory) []targets.DriftItem {
	documented, live := compared(cfg, inv)
	ready := readyEndpoints(inv.EndpointSlices)
	var out []targets.DriftItem
	add := func(kind, subject, format string, args ...any) {
		out = append(out, targets.DriftItem{Kind: kind, Subject: subject, Detail: fmt.Sprintf(format, args...)})
	}
	for key, d := range documented {
		l, ok := live[key]
		if !ok {
			add(targets.DriftMissingLive, key, "documented as %s, no such Service in the cluster", d.Type)
			continue
		}
		if lt := string(l.Spec.Type); lt != d.Type {
			if d.Type == "ClusterIP" && (lt == "NodePort" || lt == "LoadBalancer") {
				add(targets.DriftExposedType, key, "documented as internal (ClusterIP), live as %s", lt)
			} else {
				add(targets.DriftTypeDifferent, key, "documented as %s, live as %s", d.Type, lt)
			}
		}
		livePorts := map[int]int{}
		for _, p := range l.Spec.Ports {
			livePorts[int(p.Port)] = int(p.NodePort)
		}
		for _, p := range d.Ports {
			np, ok := livePorts[p.Port]
			switch {
			case !ok:
				add(targets.DriftPort, key, "documented port %d is not on the live Service", p.Port)
			case p.NodePort != 0 && np != p.NodePort:
				add(targets.DriftNodePort, key, "port %d: documented node port %d, live %d", p.Port, p.NodePort, np)
			}
			delete(livePorts, p.Port)
		}
		for p := range livePorts {
			add(targets.DriftPort, key, "live port %d is not documented", p)
		}
		if l.Spec.Type != corev1.ServiceTypeExternalName && len(l.Spec.Selector) > 0 && ready[key] == 0 {
			add(targets.DriftNoEndpoints, key, "no ready endpoint behind the Service")
		}
	}
	for key := range live {
		if documented[key] == nil {
			add(targets.DriftUndocumented, key, "live %s Service is not in the topology", live[key].Spec.Type)
		}
	}
	slices.SortFunc(out, func(a, b targets.DriftItem) int {
		return strings.Compare(a.Subject+"\x00"+a.Kind+"\x00"+a.Detail, b.Subject+"\x00"+b.Kind+"\x00"+b.Detail)
	})
	return out
}

// compared returns the documented Services expected live (type None is
// not) and the live Services of the namespaces the topology documents,
// both by namespace/name.
func compared(cfg *config.Config, inv *KubeInventory) (map[string]*config.Service, map[string]*corev1.Service) {
	documented := map[string]*config.Service{}
	namespaces := map[string]bool{}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		if s.Type == "None" {
			continue
		}
		documented[s.Key()] = s
		namespaces[s.Namespace] = true
	}
	live := map[string]*corev1.Service{}
	for i := range inv.Services {
		s := &inv.Services[i]
		if namespaces[s.Namespace] {
			live[s.Namespace+"/"+s.Name] = s
		}
	}
	return documented, live
}

// ServiceCounts is how many Services KubeDrift compares on each side.
func ServiceCounts(cfg *config.Config, inv *KubeInventory) (documented, live int) {
	d, l := compared(cfg, inv)
	return len(d), len(l)
}

// readyEndpoints counts ready endpoints per Service (namespace/name).
func readyEndpoints(slices []discoveryv1.EndpointSlice) map[string]int {
	out := map[string]int{}
	for _, s := range slices {
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				out[s.Namespace+"/"+svc]++
			}
		}
	}
	return out
}

package live

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/targets"
)

// LiveFrom reduces an inventory to what the paths are built from.
func LiveFrom(inv *KubeInventory) *targets.Live {
	l := &targets.Live{Services: map[string]*targets.LiveService{}}
	for _, n := range inv.Nodes {
		if !nodeReady(&n) {
			continue
		}
		ln := targets.LiveNode{Name: n.Name}
		for _, a := range n.Status.Addresses {
			switch {
			case a.Type == corev1.NodeInternalIP && ln.InternalIP == "":
				ln.InternalIP = a.Address
			case a.Type == corev1.NodeExternalIP && ln.ExternalIP == "":
				ln.ExternalIP = a.Address
			}
		}
		l.Nodes = append(l.Nodes, ln)
	}
	slices.SortFunc(l.Nodes, func(a, b targets.LiveNode) int { return cmp.Compare(a.Name, b.Name) })

	// A Service port reaches pods through its name: the EndpointSlice
	// port of the same name carries the number on the pod.
	portNames := map[string]map[string]int{} // service → port name → service port
	for _, s := range inv.Services {
		key := s.Namespace + "/" + s.Name
		ls := &targets.LiveService{NodePorts: map[int]int{}}
		names := map[string]int{}
		for _, p := range s.Spec.Ports {
			names[p.Name] = int(p.Port)
			if p.NodePort != 0 {
				ls.NodePorts[int(p.Port)] = int(p.NodePort)
			}
		}
		l.Services[key], portNames[key] = ls, names
	}
	for _, sl := range inv.EndpointSlices {
		key := sl.Namespace + "/" + sl.Labels[discoveryv1.LabelServiceName]
		ls, ok := l.Services[key]
		if !ok || sl.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		ports := map[int]int{}
		for _, p := range sl.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if svcPort, ok := portNames[key][name]; ok && p.Port != nil {
				ports[svcPort] = int(*p.Port)
			}
		}
		for _, e := range sl.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			ep := targets.Endpoint{IP: e.Addresses[0], Ready: e.Conditions.Ready == nil || *e.Conditions.Ready, Ports: ports}
			if e.TargetRef != nil {
				ep.Pod = hop.Bound(e.TargetRef.Name, maxPodName)
			} else {
				ep.Pod = ep.IP
			}
			if e.NodeName != nil {
				ep.Node = *e.NodeName
			}
			ls.Endpoints = append(ls.Endpoints, ep)
		}
	}
	for _, ls := range l.Services {
		// A pod appears in two slices while they are rebalanced, and in an
		// IPv4 and an IPv6 slice on a dual-stack Service: it is one hop (hop
		// names are unique in a path), at its IPv4 address where it has one.
		ipv6 := func(e targets.Endpoint) bool { return strings.Contains(e.IP, ":") }
		slices.SortFunc(ls.Endpoints, func(a, b targets.Endpoint) int {
			return cmp.Or(cmp.Compare(a.Pod, b.Pod), cmpBool(ipv6(a), ipv6(b)), cmp.Compare(a.IP, b.IP))
		})
		ls.Endpoints = slices.CompactFunc(ls.Endpoints, func(a, b targets.Endpoint) bool { return a.Pod == b.Pod })
		if n := len(ls.Endpoints); n > targets.MaxEndpointsPerService {
			ls.Omitted = n - targets.MaxEndpointsPerService
			ls.Endpoints = ls.Endpoints[:targets.MaxEndpointsPerService]
		}
	}
	return l
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// CordonedNodes counts the Ready nodes marked unschedulable. Their
// NodePort hops stay: kube-proxy serves NodePorts on a cordoned node
// until it leaves, and load balancers keep it unless it is labelled
// node.kubernetes.io/exclude-from-external-load-balancers.
func CordonedNodes(inv *KubeInventory) int {
	n := 0
	for i := range inv.Nodes {
		if inv.Nodes[i].Spec.Unschedulable && nodeReady(&inv.Nodes[i]) {
			n++
		}
	}
	return n
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// maxPodName bounds a pod's name where it becomes a hop's name (and so a
// label value): Kubernetes allows 253 bytes.
const maxPodName = 96

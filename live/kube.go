package live

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/allinx/hopprobe/config"
)

// KubeInventory is what `kubectl get svc,endpointslices,nodes -A -o json`
// prints, decoded into the Kubernetes API types.
type KubeInventory struct {
	Services       []corev1.Service
	EndpointSlices []discoveryv1.EndpointSlice
	Nodes          []corev1.Node
}

// ReadKubeList decodes a kubectl List; items of other kinds are an error,
// so that the wrong export is noticed rather than half-read.
func ReadKubeList(r io.Reader) (*KubeInventory, error) {
	var list struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(r).Decode(&list); err != nil {
		return nil, fmt.Errorf("not kubectl JSON output: %w", err)
	}
	if list.Kind != "List" && !strings.HasSuffix(list.Kind, "List") {
		return nil, fmt.Errorf("want the output of `kubectl get svc,endpointslices,nodes -A -o json` (kind List), got kind %q", list.Kind)
	}
	inv := &KubeInventory{}
	for i, raw := range list.Items {
		var meta struct{ Kind string }
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		var err error
		switch meta.Kind {
		case "Service":
			var s corev1.Service
			err = json.Unmarshal(raw, &s)
			inv.Services = append(inv.Services, s)
		case "EndpointSlice":
			var e discoveryv1.EndpointSlice
			err = json.Unmarshal(raw, &e)
			inv.EndpointSlices = append(inv.EndpointSlices, e)
		case "Node":
			var n corev1.Node
			err = json.Unmarshal(raw, &n)
			inv.Nodes = append(inv.Nodes, n)
		default:
			return nil, fmt.Errorf("item %d is a %s; only Service, EndpointSlice and Node are read", i, meta.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("item %d (%s): %w", i, meta.Kind, err)
		}
	}
	return inv, nil
}

// ImportKube turns live Services and Nodes into topology entries: what
// `probe import kube` prints for an operator to merge into the file.
func ImportKube(inv *KubeInventory, namespaces []string) ([]config.Service, []config.Node) {
	var svcs []config.Service
	for _, s := range inv.Services {
		if len(namespaces) > 0 && !slices.Contains(namespaces, s.Namespace) {
			continue
		}
		cs := config.Service{Name: s.Name, Namespace: s.Namespace, Type: string(s.Spec.Type), ClusterIP: s.Spec.ClusterIP}
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			for _, in := range s.Status.LoadBalancer.Ingress {
				cs.External = in.Hostname
			}
		}
		for _, p := range s.Spec.Ports {
			cs.Ports = append(cs.Ports, config.Port{Name: p.Name, Port: int(p.Port), NodePort: int(p.NodePort)})
		}
		svcs = append(svcs, cs)
	}
	var nodes []config.Node
	for _, n := range inv.Nodes {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				nodes = append(nodes, config.Node{Name: n.Name, Address: a.Address})
				break
			}
		}
	}
	return svcs, nodes
}

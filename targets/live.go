package targets

import (
	"fmt"
	"net"
	"strconv"

	"github.com/allinx/hopprobe/config"
)

// MaxEndpointsPerService bounds the pod hops of one Service: a Service
// scaled to hundreds of pods would otherwise multiply every path through
// it. The first pods by name are probed; the rest are counted as omitted.
const MaxEndpointsPerService = 32

// Live is what discovery feeds into the paths: the nodes that NodePorts
// are reachable on, and what stands behind each Service. It is compared
// as a whole (reflect.DeepEqual) to decide whether the paths change, so
// it holds only what the paths are built from, in a stable order.
type Live struct {
	Nodes    []LiveNode
	Services map[string]*LiveService // by namespace/name
}

// LiveNode is a Ready node and its addresses.
type LiveNode struct {
	Name, InternalIP, ExternalIP string
}

// LiveService is a Service as the cluster has it.
type LiveService struct {
	// NodePorts maps a Service port to its node port.
	NodePorts map[int]int
	// Endpoints are the pods behind the Service, by pod name.
	Endpoints []Endpoint
	// Omitted counts the endpoints beyond MaxEndpointsPerService.
	Omitted int
}

// Endpoint is one pod behind a Service.
type Endpoint struct {
	Pod, Node, IP string
	Ready         bool
	// Ports maps a Service port to the port on the pod it forwards to.
	Ports map[int]int
}

// String says what discovery sees, for logs.
func (l *Live) String() string {
	eps := 0
	for _, s := range l.Services {
		eps += len(s.Endpoints)
	}
	return fmt.Sprintf("%d ready nodes, %d Services, %d endpoints", len(l.Nodes), len(l.Services), eps)
}

// Counts says how many ready nodes, and ready, not-ready and omitted
// pods behind its Services, l holds (call it on Documented's result for
// the documented Services).
func (l *Live) Counts() (nodes, ready, notReady, omitted int) {
	for _, ls := range l.Services {
		for _, e := range ls.Endpoints {
			if e.Ready {
				ready++
			} else {
				notReady++
			}
		}
		omitted += ls.Omitted
	}
	return len(l.Nodes), ready, notReady, omitted
}

// ExpandLive is Expand with what discovery sees: NodePort paths get one
// hop per Ready node at the live node port, and paths through a Service
// get one hop per pod behind it, so that one bad pod behind a healthy
// Service is its own failed hop. A nil live is Expand.
func ExpandLive(cfg *config.Config, vantage string, live *Live) ([]*Path, error) {
	return expand(cfg, vantage, live)
}

// nodes is where the NodePorts of s are probed from vantage: the live
// Ready nodes when discovery runs (their external address from outside
// the cluster, where they have one), else the documented ones.
func (l *Live) nodes(cfg *config.Config, vantage string) []config.Node {
	if l == nil {
		return cfg.Nodes
	}
	out := make([]config.Node, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		addr := n.InternalIP
		if vantage != config.VantageCluster && n.ExternalIP != "" {
			addr = n.ExternalIP
		}
		if addr != "" {
			out = append(out, config.Node{Name: n.Name, Address: addr})
		}
	}
	return out
}

// nodePort is the node port of s's port: the live one when discovery
// knows the Service (what is really open), else the documented one.
func (l *Live) nodePort(s *config.Service, pt config.Port) int {
	if l != nil {
		if ls := l.Services[s.Key()]; ls != nil {
			if np, ok := ls.NodePorts[pt.Port]; ok {
				return np
			}
		}
	}
	return pt.NodePort
}

// addEndpoints appends a hop per pod behind port of svc, probed like the
// Service hop at owner but at the pod's own address, and makes the
// Service hop depend on them: when the Service and one of its pods both
// fail, the pod is the one to look at. Pods are probed from inside the
// cluster only. It returns the positions of the probed pod hops.
func (p *Path) addEndpoints(l *Live, vantage string, svc *config.Service, port, owner int, name func(pod string) string) []int {
	if l == nil || vantage != config.VantageCluster {
		return nil
	}
	ls := l.Services[svc.Key()]
	if ls == nil {
		return nil
	}
	var added []int
	for _, e := range ls.Endpoints {
		podPort, ok := e.Ports[port]
		if !ok {
			continue
		}
		h := p.Hops[owner]
		h.Name, h.Role, h.DependsOn = name(e.Pod), RolePod, nil
		h.Target.Address = net.JoinHostPort(e.IP, strconv.Itoa(podPort))
		if !e.Ready {
			h.Skip = fmt.Sprintf("pod %s is not ready; the Service sends it no traffic", e.Pod)
		}
		i := p.add(h)
		if h.Skip == "" && p.Hops[owner].Skip == "" {
			added = append(added, i)
			p.Hops[owner].DependsOn = append(p.Hops[owner].DependsOn, i)
		}
	}
	return added
}

// Documented keeps the Services that cfg documents: changes elsewhere in
// the cluster (kube-system, other teams) do not touch any path.
func (l *Live) Documented(cfg *config.Config) *Live {
	out := &Live{Nodes: l.Nodes, Services: map[string]*LiveService{}}
	for i := range cfg.Services {
		key := cfg.Services[i].Key()
		if s, ok := l.Services[key]; ok {
			out.Services[key] = s
		}
	}
	return out
}

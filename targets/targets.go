// Package targets turns the topology into paths: ordered chains of hops,
// from DNS through the edge, APISIX and the Service down to each data
// store the service depends on, as seen from one vantage.
package targets

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"net"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/allinx/hopprobe/chain"
	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// Role is what a hop probes, as the map groups components.
type Role string

// The roles of hops.
const (
	RoleDNS     Role = "dns"     // the name lookup
	RoleEdge    Role = "edge"    // an entry hop: CDN, load balancer, gateway
	RoleService Role = "service" // a Service (its ports, or a route's request to it)
	RolePod     Role = "pod"     // one pod behind a Service
	RoleNode    Role = "node"    // a node's NodePort
	RoleStore   Role = "store"   // a data store
)

// Component is the kind of map component a hop of this role belongs to:
// a pod's and a node port's hops belong to their Service.
func (r Role) Component() string {
	switch r {
	case RolePod, RoleNode:
		return string(RoleService)
	}
	return string(r)
}

// Path kinds.
const (
	PathRoute    = "route"
	PathService  = "service"
	PathNodePort = "nodeport"
)

// Hop is one probed step of a path.
type Hop struct {
	Name string
	// Node is what the hop probes, named the same in every path: an entry
	// hop's name, "namespace/service", or a data store's name. The
	// topology map and per-component alerts group hops by it.
	Node string
	// Role is the hop's place on the map, set when the path is built.
	Role    Role
	Kind    hop.Kind
	Target  hop.Target
	Timeout time.Duration
	// Skip, when set, says why this hop is not probed from this vantage.
	Skip string
	// Layer is, for an entry hop that sends the route's request, its
	// 1-based place in the path's Entry; 0 for every other hop.
	Layer int
	// DependsOn lists the positions of hops whose failure explains this
	// hop's failure: a request through the edge fails when the ALB behind
	// it fails, a service's health check fails when its Redis does.
	DependsOn []int
	// key is the hop's shared-result key, fixed when the path is built.
	key string
}

// CacheKey identifies what the hop's probe does (hop.Target.Key), so
// that paths sharing a hop share one probe per interval. It is computed
// once, when the path is built, not at every walk; a hop built by hand
// computes it here.
func (h *Hop) CacheKey() string {
	if h.key != "" {
		return h.key
	}
	return h.Target.Key(h.Kind)
}

// Describe says in one line what the hop does, for the CLI and status.
func (h *Hop) Describe() string { return hop.Describe(h.Kind, &h.Target) }

// Path is a documented way through the platform and its hop chain.
type Path struct {
	ID        string
	Kind      string
	Vantage   string
	Namespace string
	Service   string
	Interval  time.Duration
	Timeout   time.Duration
	// Retries is how many times a failed hop is probed again, each after
	// RetrySpacing, before its failure counts (defaults.confirm).
	Retries      int
	RetrySpacing time.Duration
	// BrokenInterval, when set, is how often the path is walked while
	// broken (defaults.broken_interval).
	BrokenInterval time.Duration
	Hops           []Hop
	// Entry is a route path's documented way in, as the chain
	// attestation sees it: the entry's components in order. An entry
	// request hop's Layer is its place here.
	Entry []chain.Component
	// Alternatives are the route's other entries that begin at the same
	// component (CloudFront with two documented origins).
	Alternatives []chain.Alternative
	// ExpectChain, when set, is the chain the answer must show (the
	// route's probe.chain) instead of the one Entry implies.
	ExpectChain []string

	// budget is the topology's max_response_bytes, handed to every hop
	// that has no budget of its own.
	budget int64
}

// Expand builds every documented path as seen from vantage: one per
// route host and entry, one per Service that no route reaches, and one
// per NodePort Service.
func Expand(cfg *config.Config, vantage string) ([]*Path, error) {
	return expand(cfg, vantage, nil)
}

func expand(cfg *config.Config, vantage string, live *Live) ([]*Path, error) {
	if _, ok := cfg.Vantages[vantage]; !ok {
		return nil, fmt.Errorf("vantage %q is not defined in %s (have %s)", vantage, cfg.File, strings.Join(cfg.VantageNames(), ", "))
	}
	var paths []*Path
	routed := map[string]bool{}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		routed[r.Target.Key()] = true
		for _, h := range r.Hosts {
			for _, e := range r.Entries {
				paths = append(paths, routePath(routeSpec{cfg: cfg, vantage: vantage, r: r, host: h, entry: e, live: live}))
			}
		}
	}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		if !routed[s.Key()] && (len(s.Ports) > 0 || len(s.DependsOn) > 0) && s.Type != "LoadBalancer" {
			paths = append(paths, servicePath(cfg, vantage, s, live))
		}
		if s.Type == "NodePort" {
			paths = append(paths, nodePortPath(cfg, vantage, s, live))
		}
	}
	return paths, nil
}

// RouteID names the path of route r for host through entry.
func RouteID(r *config.Route, host, entry string) string {
	id := host + r.Path
	if len(r.Entries) > 0 && entry != r.Entries[0] {
		id += "@" + entry
	}
	return id
}

// routeSpec is one route path to build: route r for host through entry,
// as seen from vantage. A non-empty reqPath replaces the route's probe
// path (the CLI passes the path the operator typed); live, when set,
// adds a hop per pod.
type routeSpec struct {
	cfg         *config.Config
	vantage     string
	r           *config.Route
	host, entry string
	reqPath     string
	live        *Live
}

// routeBuild is a route path in the making.
type routeBuild struct {
	routeSpec
	p         *Path
	svc       *config.Service
	e         *config.Entry
	probeHost string // the name asked for: the host, or probe.host under a wildcard
	kind      hop.Kind
	// custom are the headers the topology's own fingerprints read,
	// besides the built-in evidence headers.
	custom []string
	// prevRequest is the last request hop, which the next one depends
	// on; twins pair a dual-stack hop's first family with its other.
	prevRequest int
	twins       [][2]int
}

// routePath builds the hop chain of a route: DNS, the entry's hops from
// the edge in (each a hop per address family on a dual-stack route),
// the Service, its pods and its data stores.
func routePath(rs routeSpec) *Path {
	b := &routeBuild{routeSpec: rs, svc: rs.cfg.FindService(rs.r.Target.Key()), e: rs.cfg.FindEntry(rs.entry),
		kind: hop.Kind(rs.r.Protocol), probeHost: rs.host, prevRequest: -1}
	r := rs.r
	b.p = newPath(rs.cfg, RouteID(r, rs.host, rs.entry), PathRoute, rs.vantage, b.svc)
	if r.Probe.Interval > 0 {
		b.p.Interval = r.Probe.Interval
	}
	if r.Probe.Timeout > 0 {
		b.p.Timeout = r.Probe.Timeout
	}
	if strings.HasPrefix(rs.host, "*.") {
		b.probeHost = r.Probe.Host
	}
	b.reqPath = cmp.Or(rs.reqPath, r.Probe.Path, strings.TrimSuffix(r.Path, "*"))
	b.addDNS()
	b.addChain()
	for layer := range b.e.Hops {
		b.addEntryHop(layer, &b.e.Hops[layer])
	}
	i := b.addService()
	for _, tw := range b.twins {
		b.p.Hops[tw[1]].DependsOn = slices.Clone(b.p.Hops[tw[0]].DependsOn)
	}
	pods := b.p.addEndpoints(rs.live, rs.vantage, b.svc, r.Target.Port, i, func(pod string) string { return "pod/" + pod })
	b.p.addStores(rs.cfg, rs.vantage, b.svc, append([]int{i}, pods...))
	return b.p
}

// noHost is why hops that need a concrete name are skipped.
func (b *routeBuild) noHost() string {
	return fmt.Sprintf("route host %s is a wildcard; set probe.host to a concrete name to probe it", b.host)
}

func (b *routeBuild) addDNS() {
	h := Hop{Name: "dns", Node: "dns", Role: RoleDNS, Kind: hop.KindDNS,
		Target: hop.Target{Host: b.probeHost, Resolver: b.cfg.Vantages[b.vantage].Resolver, DualStack: b.r.Probe.DualStack}}
	if b.probeHost == "" {
		h.Skip = b.noHost()
	}
	b.p.add(h)
}

// addChain records the documented way in, as the chain attestation
// sees it, and the route's other entries that begin at the same
// component.
func (b *routeBuild) addChain() {
	p, e := b.p, b.e
	p.ExpectChain = b.r.Probe.Chain
	for k := range e.Hops {
		p.Entry = append(p.Entry, e.Hops[k].ChainComponent())
	}
	for _, other := range b.r.Entries {
		if o := b.cfg.FindEntry(other); other != b.entry && o != nil && len(o.Hops) > 0 && o.Hops[0].Name == e.Hops[0].Name {
			alt := chain.Alternative{Entry: other}
			for k := range o.Hops {
				alt.Components = append(alt.Components, o.Hops[k].ChainComponent())
			}
			p.Alternatives = append(p.Alternatives, alt)
		}
	}
	for _, c := range p.Entry {
		if len(c.Fingerprints) > 0 {
			b.custom = append(b.custom, chain.Headers([]chain.Component{c})...)
		}
	}
}

// link makes request hop i depend on the one before it.
func (b *routeBuild) link(i int) {
	if b.prevRequest >= 0 {
		b.p.Hops[b.prevRequest].DependsOn = append(b.p.Hops[b.prevRequest].DependsOn, i)
	}
	b.prevRequest = i
}

// addEntryHop adds the hops of the entry's hop at layer: its TLS
// handshake when it speaks HTTPS, and the route's request through it,
// over each address family on a dual-stack route's edge.
func (b *routeBuild) addEntryHop(layer int, eh *config.EntryHop) {
	vantage := b.vantage
	addr := cmp.Or(eh.Addresses[vantage], eh.Address)
	scheme := cmp.Or(eh.Scheme, "http")
	skip := ""
	switch {
	case !config.Reaches(eh.From, vantage) && eh.Addresses[vantage] == "":
		skip = fmt.Sprintf("%s is not reachable from the %s vantage", eh.Name, vantage)
	case addr == "":
		skip = fmt.Sprintf("no address for %s from the %s vantage; set it under entries[%s]", eh.Name, vantage, b.e.Name)
	case strings.Contains(addr, "{host}") && b.probeHost == "":
		skip = b.noHost()
	}
	addr = strings.ReplaceAll(addr, "{host}", b.probeHost)
	// The HTTP versions asked of this hop: its own, and for the first hop
	// (the edge users reach) the route's. A WebSocket upgrade is HTTP/1.1
	// whatever the entry lists.
	var protocols []string
	altSvc := ""
	if b.kind == hop.KindHTTP {
		protocols = slices.Clone(eh.Protocols)
		if layer == 0 {
			for _, pr := range b.r.Probe.Protocols {
				if !slices.Contains(protocols, pr) {
					protocols = append(protocols, pr)
				}
			}
		}
		altSvc = eh.AltSvc
	}
	// A dual-stack route's edge, reached by name, is probed over each
	// address family as a hop of its own ("cloudfront-ipv4",
	// "cloudfront-ipv6"), so that "IPv6 broken, IPv4 fine" is a failing
	// hop of its own; a hop limited to one family (family:) is probed
	// over that one.
	family := cmp.Or(eh.Family, b.e.Family)
	families := []string{family}
	if h, _, err := net.SplitHostPort(addr); b.r.Probe.DualStack && family == "" && err == nil && net.ParseIP(h) == nil {
		families = []string{"ipv4", "ipv6"}
	}
	first := -1
	for _, fam := range families {
		name := eh.Name
		if len(families) > 1 {
			name += "-" + fam
		}
		resolver := ""
		if fam != "" {
			resolver = b.cfg.Vantages[vantage].Resolver
		}
		if scheme == "https" {
			b.p.add(Hop{Name: name + "-tls", Node: eh.Name, Role: RoleEdge, Kind: hop.KindTLS, Skip: skip,
				Target: hop.Target{Address: addr, Host: b.probeHost, TLS: eh.TLS, Family: fam, Resolver: resolver}})
		}
		i := b.p.add(Hop{Name: name, Node: eh.Name, Role: RoleEdge, Kind: b.kind, Skip: skip, Layer: layer + 1, Target: hop.Target{
			Address: addr, Host: b.probeHost, Scheme: scheme, Path: b.reqPath, TLS: eh.TLS,
			Expect: b.r.Probe.Expect, MaxBodyBytes: b.cfg.Defaults.MaxBodyBytes, EvidenceHeaders: b.custom, Protocols: protocols,
			Family: fam, Resolver: resolver, AltSvc: altSvc,
		}})
		switch {
		case skip != "":
		case first < 0:
			first = i
			b.link(i)
		default:
			// The other family's twin: above it what is above the first
			// (nothing: the edge is the top), below it what comes below
			// the first.
			b.twins = append(b.twins, [2]int{first, i})
		}
	}
}

// addService adds the hop to the Service behind the route and returns
// its index.
func (b *routeBuild) addService() int {
	svcHost := cmp.Or(b.probeHost, serviceHost(b.svc))
	i := b.p.add(Hop{Name: "service", Node: b.svc.Key(), Role: RoleService, Kind: b.kind, Skip: serviceSkip(b.vantage, b.svc), Target: hop.Target{
		Address: ServiceAddr(b.svc, b.r.Target.Port), Host: svcHost, Scheme: "http", Path: b.reqPath,
		Expect: b.r.Probe.Expect, MaxBodyBytes: b.cfg.Defaults.MaxBodyBytes,
	}})
	if b.p.Hops[i].Skip == "" {
		b.link(i)
	}
	return i
}

func newPath(cfg *config.Config, id, kind, vantage string, svc *config.Service) *Path {
	return &Path{
		ID: id, Kind: kind, Vantage: vantage,
		Namespace: svc.Namespace, Service: svc.Name,
		Interval: cfg.Defaults.Interval, Timeout: cfg.Defaults.Timeout,
		Retries: cfg.Defaults.Confirm.RetryCount(), RetrySpacing: cfg.Defaults.Confirm.Spacing,
		BrokenInterval: cfg.Defaults.BrokenEvery(),
		budget:         cfg.Defaults.MaxResponseBytes,
	}
}

// add appends a hop with the path's timeout and returns its position.
func (p *Path) add(h Hop) int {
	if h.Timeout == 0 {
		h.Timeout = p.Timeout
	}
	if h.Target.MaxResponseBytes == 0 {
		h.Target.MaxResponseBytes = p.budget
	}
	h.key = h.Target.Key(h.Kind)
	p.Hops = append(p.Hops, h)
	return len(p.Hops) - 1
}

// addStores appends one hop per data store svc depends on; the hops at
// owners (the service's own checks, and its pods') depend on each of them.
func (p *Path) addStores(cfg *config.Config, vantage string, svc *config.Service, owners []int) {
	for _, name := range svc.DependsOn {
		st := cfg.FindStore(name)
		h := Hop{Name: st.Name, Node: st.Name, Role: RoleStore, Kind: hop.Kind(st.Kind), Timeout: st.Timeout,
			Target: hop.Target{Address: st.Address, Host: hostOf(st.Address), Store: st, TLS: st.TLS, MaxResponseBytes: st.MaxResponseBytes}}
		if !config.Reaches(st.From, vantage) {
			h.Skip = fmt.Sprintf("store %s is not reachable from the %s vantage", st.Name, vantage)
		}
		i := p.add(h)
		for _, o := range owners {
			if h.Skip == "" && p.Hops[o].Skip == "" {
				p.Hops[o].DependsOn = append(p.Hops[o].DependsOn, i)
			}
		}
	}
}

// ServiceID names the path of a Service that no route reaches.
func ServiceID(s *config.Service) string { return "svc/" + s.Key() }

// NodePortID names the NodePort path of a Service.
func NodePortID(s *config.Service) string { return "nodeport/" + s.Key() }

func servicePath(cfg *config.Config, vantage string, s *config.Service, live *Live) *Path {
	p := newPath(cfg, ServiceID(s), PathService, vantage, s)
	skip := serviceSkip(vantage, s)
	var owners []int
	ports := make([]int, 0, len(s.Ports))
	for _, pt := range s.Ports {
		kind := hop.Kind(pt.Protocol)
		h := Hop{Name: "port-" + strconv.Itoa(pt.Port), Node: s.Key(), Role: RoleService, Kind: kind, Skip: skip, Target: hop.Target{
			Address: ServiceAddr(s, pt.Port), Host: serviceHost(s), Scheme: "http", Path: healthPath(s),
			MaxBodyBytes: cfg.Defaults.MaxBodyBytes,
		}}
		if kind == "" {
			h.Kind = hop.KindTCP
		}
		ports = append(ports, p.add(h))
	}
	// Pod hops follow the Service hops; a pod answers on every port of its
	// Service, so each port's pod hops are named after both.
	for n, i := range ports {
		pt := s.Ports[n]
		pods := p.addEndpoints(live, vantage, s, pt.Port, i, func(pod string) string {
			return "pod/" + pod + "/port-" + strconv.Itoa(pt.Port)
		})
		// A bare TCP connect does not exercise the stores behind it.
		if p.Hops[i].Kind != hop.KindTCP {
			owners = append(owners, i)
			owners = append(owners, pods...)
		}
	}
	p.addStores(cfg, vantage, s, owners)
	return p
}

// nodePortPath has one hop per node and node port, so that one bad node
// shows as one bad hop.
func nodePortPath(cfg *config.Config, vantage string, s *config.Service, live *Live) *Path {
	p := newPath(cfg, NodePortID(s), PathNodePort, vantage, s)
	mustNot := false
	for _, v := range s.NodePortUnreachableFrom {
		mustNot = mustNot || v == vantage
	}
	nodes := live.nodes(cfg, vantage)
	if len(nodes) == 0 {
		why := "no node addresses in the topology (nodes:); NodePorts cannot be probed"
		if live != nil {
			why = "discovery sees no Ready node with an address; NodePorts cannot be probed"
		}
		p.add(Hop{Name: "nodes", Node: s.Key(), Role: RoleNode, Kind: hop.KindNodePort, Skip: why})
		return p
	}
	for _, pt := range s.Ports {
		pt.NodePort = live.nodePort(s, pt)
		if pt.NodePort == 0 {
			continue
		}
		for _, n := range nodes {
			scheme := ""
			if pt.Protocol == "http" && !mustNot {
				scheme = "http"
			}
			p.add(Hop{Name: fmt.Sprintf("%s:%d", n.Name, pt.NodePort), Node: s.Key(), Role: RoleNode, Kind: hop.KindNodePort, Target: hop.Target{
				Address: net.JoinHostPort(n.Address, strconv.Itoa(pt.NodePort)), Host: n.Address,
				Scheme: scheme, Path: healthPath(s), MaxBodyBytes: cfg.Defaults.MaxBodyBytes,
				ExpectUnreachable: mustNot,
			}})
		}
	}
	return p
}

func serviceSkip(vantage string, s *config.Service) string {
	if vantage != config.VantageCluster {
		return fmt.Sprintf("Service %s is only reachable from inside the cluster", s.Key())
	}
	return ""
}

func serviceHost(s *config.Service) string {
	if s.Host != "" {
		return s.Host
	}
	return s.Name + "." + s.Namespace + ".svc.cluster.local"
}

// ServiceAddr is host:port of a Service port from inside the cluster.
func ServiceAddr(s *config.Service, port int) string {
	for _, pt := range s.Ports {
		if pt.Port == port && pt.Address != "" {
			return pt.Address
		}
	}
	return net.JoinHostPort(serviceHost(s), strconv.Itoa(port))
}

func healthPath(s *config.Service) string {
	if s.HealthPath != "" {
		return s.HealthPath
	}
	return "/"
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// IDs returns the sorted IDs of paths.
func IDs(paths []*Path) []string {
	ids := make([]string, len(paths))
	for i, p := range paths {
		ids[i] = p.ID
	}
	sort.Strings(ids)
	return ids
}

// Edges are the links of the documented flow that this path walks, as
// pairs of hop nodes: each hop of the request chain to the next (a TLS
// hop and its request share a node), and the service to each store.
func (p *Path) Edges() [][2]string {
	var out [][2]string
	seen := map[[2]string]bool{}
	addEdge := func(a, b string) {
		e := [2]string{a, b}
		if a != "" && b != "" && a != b && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	prev, owner := "", ""
	for _, h := range p.Hops {
		if h.Target.Store != nil {
			addEdge(owner, h.Node)
			continue
		}
		addEdge(prev, h.Node)
		prev, owner = h.Node, h.Node
	}
	return out
}

// Reuse returns next with each path that is the same as one in old (its
// ID and every field alike) replaced by old's pointer, so that whatever
// keys on the path (the scheduler's slot and walk in flight, the board's
// last walk, the exporter's series) sees it unchanged across a reload or
// a discovery change, and a walk begun before it still lands.
func Reuse(old, next []*Path) []*Path {
	byID := make(map[string]*Path, len(old))
	for _, p := range old {
		byID[p.ID] = p
	}
	out := make([]*Path, len(next))
	for i, p := range next {
		out[i] = p
		if o := byID[p.ID]; o != nil && reflect.DeepEqual(o, p) {
			out[i] = o
		}
	}
	return out
}

// Links are every path's links with the vantage that walks them:
// source, target, vantage, sorted, each once.
func Links(paths []*Path) [][3]string {
	var out [][3]string
	for _, p := range paths {
		for _, ed := range p.Edges() {
			out = append(out, [3]string{ed[0], ed[1], p.Vantage})
		}
	}
	slices.SortFunc(out, func(a, b [3]string) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]), strings.Compare(a[2], b[2]))
	})
	return slices.Compact(out)
}

// Shard keeps the paths of shard index of n: those whose ID hashes to
// index modulo n, so that n probers (each its own Deployment, --shard
// i/n) share a topology too large for one, every path walked by exactly
// one of them, and a path stays in its shard across reloads and
// discovery changes. A hop that paths of two shards share is probed by
// both. n of 0 or 1 keeps every path.
func Shard(paths []*Path, index, n int) []*Path {
	if n <= 1 {
		return paths
	}
	var out []*Path
	for _, p := range paths {
		h := fnv.New32a()
		h.Write([]byte(p.ID))
		if int(h.Sum32()%uint32(n)) == index {
			out = append(out, p)
		}
	}
	return out
}

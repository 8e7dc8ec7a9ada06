package live

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/targets"
)

// APISIXExport is the three APISIX 3.x Admin API listings, each exactly
// as GET /apisix/admin/{routes,services,upstreams} returns it:
//
//	{"routes": <routes>, "services": <services>, "upstreams": <upstreams>}
type APISIXExport struct {
	Routes    adminList[apisixRoute]    `json:"routes"`
	Services  adminList[apisixService]  `json:"services"`
	Upstreams adminList[apisixUpstream] `json:"upstreams"`
}

type adminList[T any] struct {
	Total int `json:"total"`
	List  []struct {
		Key   string `json:"key"`
		Value T      `json:"value"`
	} `json:"list"`
}

type apisixRoute struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	URI        string          `json:"uri"`
	URIs       []string        `json:"uris"`
	Host       string          `json:"host"`
	Hosts      []string        `json:"hosts"`
	ServiceID  string          `json:"service_id"`
	UpstreamID string          `json:"upstream_id"`
	Upstream   *apisixUpstream `json:"upstream"`
	WebSocket  bool            `json:"enable_websocket"`
	Status     *int            `json:"status"`
}

type apisixService struct {
	ID         string          `json:"id"`
	Hosts      []string        `json:"hosts"`
	UpstreamID string          `json:"upstream_id"`
	Upstream   *apisixUpstream `json:"upstream"`
}

type apisixUpstream struct {
	ID string `json:"id"`
	// Nodes is either {"host:port": weight} or [{"host":…, "port":…}].
	Nodes json.RawMessage `json:"nodes"`
}

// APISIXRoute is one host and path pattern and the Service APISIX sends it to.
type APISIXRoute struct {
	ID      string
	Host    string
	Path    string
	Service string // namespace/name:port, or the raw upstream when it is not a Service
}

// ReadAPISIXExport decodes the export.
func ReadAPISIXExport(r io.Reader) (*APISIXExport, error) {
	var e APISIXExport
	if err := json.NewDecoder(r).Decode(&e); err != nil {
		return nil, fmt.Errorf("not an APISIX Admin API export ({\"routes\": …, \"services\": …, \"upstreams\": …}): %w", err)
	}
	return &e, nil
}

// Resolve resolves every enabled route to its upstream Service, one entry
// per host and URI.
func (e *APISIXExport) Resolve() ([]APISIXRoute, error) {
	ups := map[string]*apisixUpstream{}
	for i := range e.Upstreams.List {
		u := &e.Upstreams.List[i].Value
		ups[u.ID] = u
	}
	svcs := map[string]*apisixService{}
	for i := range e.Services.List {
		s := &e.Services.List[i].Value
		svcs[s.ID] = s
	}
	var out []APISIXRoute
	for _, item := range e.Routes.List {
		r := item.Value
		if r.Status != nil && *r.Status == 0 {
			continue // disabled
		}
		up := r.Upstream
		hosts := append([]string{}, r.Hosts...)
		if r.Host != "" {
			hosts = append(hosts, r.Host)
		}
		if up == nil && r.UpstreamID != "" {
			up = ups[r.UpstreamID]
		}
		if s := svcs[r.ServiceID]; s != nil {
			if up == nil && s.Upstream != nil {
				up = s.Upstream
			}
			if up == nil && s.UpstreamID != "" {
				up = ups[s.UpstreamID]
			}
			if len(hosts) == 0 {
				hosts = s.Hosts
			}
		}
		if up == nil {
			return nil, fmt.Errorf("route %s: no upstream (upstream_id %q, service_id %q not found)", r.ID, r.UpstreamID, r.ServiceID)
		}
		target, err := upstreamService(up)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.ID, err)
		}
		uris := append([]string{}, r.URIs...)
		if r.URI != "" {
			uris = append(uris, r.URI)
		}
		if len(hosts) == 0 {
			hosts = []string{"*"}
		}
		// Every host times every URI: a small export whose routes list many
		// of each would expand to millions of pairs.
		if len(out)+len(hosts)*len(uris) > MaxRoutePairs {
			return nil, fmt.Errorf("the routes expand to more than %d host and URI pairs (route %s alone has %d hosts and %d URIs); hopprobe compares at most that many", MaxRoutePairs, r.ID, len(hosts), len(uris))
		}
		for _, h := range hosts {
			for _, u := range uris {
				out = append(out, APISIXRoute{ID: r.ID, Host: strings.ToLower(h), Path: u, Service: target})
			}
		}
	}
	return out, nil
}

// MaxRoutePairs bounds the host and URI pairs an APISIX export may expand
// to; ALLINX documents about a hundred.
const MaxRoutePairs = 20000

// upstreamService names the Kubernetes Service behind an upstream's
// first node: NAME.NAMESPACE[.svc[.cluster.local]]:PORT → namespace/name:port.
func upstreamService(u *apisixUpstream) (string, error) {
	var addrs []string
	var asMap map[string]int
	var asList []struct {
		Host string `json:"host"`
		Port int    `json:"port"`
	}
	switch {
	case json.Unmarshal(u.Nodes, &asMap) == nil:
		for a := range asMap {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
	case json.Unmarshal(u.Nodes, &asList) == nil:
		for _, n := range asList {
			addrs = append(addrs, net.JoinHostPort(n.Host, strconv.Itoa(n.Port)))
		}
	default:
		return "", fmt.Errorf("upstream %s: nodes are neither a map nor a list", u.ID)
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("upstream %s has no nodes", u.ID)
	}
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil {
		return "", fmt.Errorf("upstream %s node %q: %w", u.ID, addrs[0], err)
	}
	parts := strings.Split(strings.TrimSuffix(host, ".svc.cluster.local"), ".")
	if len(parts) >= 2 && (len(parts) == 2 || parts[2] == "svc") {
		return parts[1] + "/" + parts[0] + ":" + port, nil
	}
	return addrs[0], nil
}

// RouteDrift compares the documented routes with APISIX's.
func RouteDrift(cfg *config.Config, live []APISIXRoute) []targets.DriftItem {
	type key struct{ host, path string }
	liveBy := map[key]APISIXRoute{}
	for _, r := range live {
		liveBy[key{r.Host, r.Path}] = r
	}
	documented := map[key]bool{}
	var out []targets.DriftItem
	for _, r := range cfg.Routes {
		for _, h := range r.Hosts {
			k := key{strings.ToLower(h), r.Path}
			documented[k] = true
			l, ok := liveBy[k]
			subject := h + r.Path
			switch {
			case !ok:
				out = append(out, targets.DriftItem{Kind: targets.DriftRouteMissing, Subject: subject, Detail: "documented route to " + r.Service + " is not in APISIX"})
			case l.Service != r.Service:
				out = append(out, targets.DriftItem{Kind: targets.DriftRouteUpstream, Subject: subject,
					Detail: fmt.Sprintf("documented upstream %s, APISIX route %s sends it to %s", r.Service, l.ID, l.Service)})
			}
		}
	}
	for k, l := range liveBy {
		if !documented[k] {
			out = append(out, targets.DriftItem{Kind: targets.DriftRouteUndocumented, Subject: k.host + k.path,
				Detail: fmt.Sprintf("APISIX route %s to %s is not documented", l.ID, l.Service)})
		}
	}
	slices.SortFunc(out, func(a, b targets.DriftItem) int {
		return strings.Compare(a.Subject+"\x00"+a.Kind, b.Subject+"\x00"+b.Kind)
	})
	return out
}

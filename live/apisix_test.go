package live_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/live"
)

// apisixExport builds, in the APISIX 3.x Admin API format, the routes the
// documents describe: every other route through a service object, nodes
// alternately as a map and as a list. edit may plant differences.
func apisixExport(t *testing.T, cfg *config.Config, edit func(routes *[]map[string]any)) []byte {
	t.Helper()
	var routes []map[string]any
	ups := map[string]map[string]any{}
	var upOrder []string
	var services []map[string]any
	for i, r := range cfg.Routes {
		ref, ok := config.ParseServiceRef(r.Service)
		if !ok {
			t.Fatalf("route %v: bad service %q", r.Hosts, r.Service)
		}
		ns, name, port := ref.Namespace, ref.Name, ref.Port
		upID := fmt.Sprintf("u-%s-%s-%d", ns, name, port)
		if ups[upID] == nil {
			host := fmt.Sprintf("%s.%s.svc.cluster.local", name, ns)
			var nodes any = map[string]int{fmt.Sprintf("%s:%d", host, port): 1}
			if len(upOrder)%2 == 1 {
				nodes = []map[string]any{{"host": host, "port": port, "weight": 1}}
			}
			ups[upID] = map[string]any{"id": upID, "type": "roundrobin", "nodes": nodes}
			upOrder = append(upOrder, upID)
		}
		route := map[string]any{"id": fmt.Sprintf("r%03d", i), "uri": r.Path, "hosts": r.Hosts, "status": 1,
			"enable_websocket": r.Protocol == "websocket"}
		if i%2 == 0 {
			route["upstream_id"] = upID
		} else {
			sid := fmt.Sprintf("s%03d", i)
			services = append(services, map[string]any{"id": sid, "upstream_id": upID})
			route["service_id"] = sid
		}
		routes = append(routes, route)
	}
	if edit != nil {
		edit(&routes)
	}
	list := func(prefix string, items []map[string]any) map[string]any {
		l := []map[string]any{}
		for _, v := range items {
			l = append(l, map[string]any{"key": "/apisix/" + prefix + "/" + v["id"].(string), "value": v,
				"createdIndex": 100, "modifiedIndex": 100})
		}
		return map[string]any{"total": len(l), "list": l}
	}
	var upList []map[string]any
	for _, id := range upOrder {
		upList = append(upList, ups[id])
	}
	out, err := json.MarshalIndent(map[string]any{"routes": list("routes", routes), "services": list("services", services),
		"upstreams": list("upstreams", upList)}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func readExport(t *testing.T, name string, build func() []byte) []live.APISIXRoute {
	t.Helper()
	inv := fixtureBytes(t, "testdata/apisix/"+name, build)
	e, err := live.ReadAPISIXExport(bytes.NewReader(inv))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := e.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRouteDriftAgainstTheDocumentedRoutesIsEmpty(t *testing.T) {
	cfg := allinx(t)
	routes := readExport(t, "routes.json", func() []byte { return apisixExport(t, cfg, nil) })
	if d := live.RouteDrift(cfg, routes); len(d) != 0 {
		t.Fatalf("the documents' own routes drift: %+v", d)
	}
	// The futures WebSocket goes where the documents say, through APISIX's
	// own objects (upstream_id or service_id, map or list nodes).
	found := false
	for _, r := range routes {
		found = found || (r.Host == "api.allinpro.com" && r.Path == "/futures/ws*" && r.Service == "morph/morph-futuresws-app:8080")
	}
	if !found {
		t.Fatalf("api.allinpro.com/futures/ws* not resolved to morph/morph-futuresws-app:8080: %+v", routes)
	}
}

func TestRouteDriftReportsExactlyThePlantedDifferences(t *testing.T) {
	cfg := allinx(t)
	plant := func(routes *[]map[string]any) {
		rs := *routes
		var kept []map[string]any
		for _, r := range rs {
			switch r["uri"] {
			case "/futures/ws*":
				// To the spot API instead of the futures WebSocket.
				r["upstream_id"] = "u-landry-landry-spotapi-web-8080"
				delete(r, "service_id")
			}
			if hs, ok := r["hosts"].([]string); ok && len(hs) > 0 && hs[0] == "ws.allinpro.com" && r["uri"] == "/ws*" {
				continue // missing from APISIX
			}
			kept = append(kept, r)
		}
		kept = append(kept, map[string]any{"id": "r999", "uri": "/debug/*", "hosts": []string{"api.allinpro.com"},
			"upstream_id": "u-landry-landry-spotapi-web-8080", "status": 1})
		*routes = kept
	}
	routes := readExport(t, "routes-drifted.json", func() []byte { return apisixExport(t, cfg, plant) })
	var got []string
	for _, d := range live.RouteDrift(cfg, routes) {
		got = append(got, d.Kind+" "+d.Subject)
	}
	want := []string{
		"route-undocumented api.allinpro.com/debug/*",
		"route-upstream-differs api.allinpro.com/futures/ws*",
		"route-missing ws.allinpro.com/ws*",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("route drift\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// An export whose routes list many hosts and URIs is refused before it
// expands to millions of pairs.
func TestRouteExpansionIsBounded(t *testing.T) {
	hosts, uris := make([]string, 1500), make([]string, 1500)
	for i := range hosts {
		hosts[i], uris[i] = fmt.Sprintf("h%d.example.test", i), fmt.Sprintf("/u%d", i)
	}
	route, _ := json.Marshal(map[string]any{"id": "1", "hosts": hosts, "uris": uris,
		"upstream": map[string]any{"nodes": map[string]int{"svc.ns.svc.cluster.local:80": 1}}})
	export := fmt.Sprintf(`{"routes":{"list":[{"value":%s}]},"services":{"list":[]},"upstreams":{"list":[]}}`, route)
	e, err := live.ReadAPISIXExport(strings.NewReader(export))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Resolve(); err == nil || !strings.Contains(err.Error(), "more than 20000 host and URI pairs") {
		t.Fatalf("error %v", err)
	}
}

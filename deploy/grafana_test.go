package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// exposedMetrics is every metric name a scrape of the exporter can hold,
// read from a real registry after one walk of each production path, the
// first of them broken (results made up: only the names matter here;
// some series exist only on a broken path).
func exposedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, mf := range gathered(t) {
		n := mf.GetName()
		names[n] = true
		if mf.GetType().String() == "HISTOGRAM" {
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		}
	}
	// Scraped by Prometheus itself, not by the exporter.
	names["up"] = true
	return names
}

// gathered is every family a scrape of the exporter can hold (see
// exposedMetrics).
func gathered(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	paths, err := targets.Expand(testkit.Allinx(t), config.VantageCluster)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if p.Kind == targets.PathNodePort {
			p.Hops[0].Target.ExpectUnreachable = true
		}
	}
	b, e := status.NewBoard(paths), exporter.New(paths)
	// As the runner feeds them: the board says what a walk meant (the
	// evidence changes too), the exporter counts it.
	observe := func(r scheduler.PathResult) {
		if w, ok := b.Observe(r); ok {
			e.Observe(r, w)
		}
	}
	for _, p := range paths {
		r := scheduler.PathResult{Path: p, Hops: make([]scheduler.HopResult, len(p.Hops)), Success: true, FirstFailing: -1, Start: time.Now()}
		for i := range r.Hops {
			r.Hops[i].Success, r.Hops[i].CertExpiry = true, time.Now().Add(time.Hour)
			r.Hops[i].Phases = []hop.Phase{{Name: "connect", Duration: time.Millisecond}}
		}
		if p == paths[0] {
			r.Success, r.FirstFailing, r.Hops[0].Success = false, 0, false
		}
		observe(r)
	}
	// An evidence change (a new DNS answer set), which only a second
	// walk can show.
	for _, answer := range []string{"10.0.0.1", "10.0.0.2"} {
		p := paths[1]
		r := scheduler.PathResult{Path: p, Hops: make([]scheduler.HopResult, len(p.Hops)), Success: true, FirstFailing: -1, Start: time.Now()}
		for i := range r.Hops {
			r.Hops[i].Success = true
			r.Hops[i].Details = map[string]string{"addresses": answer}
		}
		observe(r)
	}
	// A drift check, as `probe serve --kube/--cluster` makes.
	e.SetDrift([]targets.DriftItem{{Kind: targets.DriftMissingLive, Subject: "landry/x"}}, 1, 0, nil)
	// Discovery, as `probe serve --discover` runs it.
	e.EnableDiscovery()
	e.SetDiscovery(3, 1, 5, 1, 0, true)
	e.SetDiscoverySynced(true)
	mfs, err := e.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// promql is the parser Prometheus itself uses, with its default options.
var promql = parser.NewParser(parser.Options{})

// grafanaVars stand in for Grafana's template variables so that the
// expressions parse as Prometheus will see them.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "$__interval", "1m", "$__range", "6h",
	"${datasource}", "prom", "$vantage", "cluster", "$namespace", "landry", "$path", "api.allinpro.com/*",
)

// grafanaPanels are the ids of Grafana's core panel plugins, as each
// one's plugin.json under public/app/plugins/panel spells it.
var grafanaPanels = map[string]bool{
	"alertlist": true, "annolist": true, "barchart": true, "bargauge": true, "candlestick": true, "canvas": true,
	"dashlist": true, "datagrid": true, "flamegraph": true, "gauge": true, "geomap": true, "heatmap": true,
	"histogram": true, "logs": true, "news": true, "nodeGraph": true, "piechart": true, "row": true, "stat": true,
	"state-timeline": true, "status-history": true, "table": true, "text": true, "timeseries": true, "traces": true,
	"trend": true, "xychart": true,
}

func TestDashboardsUseOnlyRealMetricsAndValidPromQL(t *testing.T) {
	known := exposedMetrics(t)
	files, _ := filepath.Glob("grafana/dashboards/*.json")
	if len(files) < 3 {
		t.Fatalf("want the three dashboards (hop health, topology map, path drill-down), found %v", files)
	}
	uids := map[string]string{}
	leftover := regexp.MustCompile(`\$\w+`)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID        string `json:"uid"`
			Templating struct {
				List []struct {
					Name, Type string
					Query      any
				}
			}
			Panels []struct {
				Title, Type string
				Datasource  struct{ UID string }
				Targets     []struct {
					Expr       string
					Datasource struct{ UID string }
				}
			}
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if other, dup := uids[d.UID]; dup || d.UID == "" {
			t.Errorf("%s: uid %q empty or shared with %s", f, d.UID, other)
		}
		uids[d.UID] = f
		if !slices.ContainsFunc(d.Templating.List, func(v struct {
			Name, Type string
			Query      any
		}) bool {
			return v.Name == "datasource" && v.Type == "datasource"
		}) {
			t.Errorf("%s: no datasource variable", f)
		}
		var exprs []string
		for _, v := range d.Templating.List {
			if q, ok := v.Query.(map[string]any); ok {
				exprs = append(exprs, labelValuesSelector(q["query"].(string)))
			}
		}
		for _, p := range d.Panels {
			if !grafanaPanels[p.Type] {
				t.Errorf("%s: panel %q has type %q, which is no Grafana core panel (ids are case-sensitive; Grafana shows \"Panel plugin not found\")", f, p.Title, p.Type)
			}
			if p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q uses data source %q, not the ${datasource} variable", f, p.Title, p.Datasource.UID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s: a query of %q uses data source %q", f, p.Title, tg.Datasource.UID)
				}
				exprs = append(exprs, tg.Expr)
			}
		}
		for _, raw := range exprs {
			expr := grafanaVars.Replace(raw)
			if v := leftover.FindString(expr); v != "" {
				t.Errorf("%s: %s uses an undefined variable %s", f, raw, v)
			}
			node, err := promql.ParseExpr(expr)
			if err != nil {
				t.Errorf("%s: %q does not parse: %v", f, raw, err)
				continue
			}
			for _, vs := range parser.ExtractSelectors(node) {
				for _, m := range vs {
					if m.Name == "__name__" && !known[m.Value] {
						t.Errorf("%s: %q queries %s, which the exporter does not expose", f, raw, m.Value)
					}
				}
			}
		}
	}
}

// labelValuesSelector turns Grafana's label_values(selector, label) into
// the selector it queries.
func labelValuesSelector(q string) string {
	q = strings.TrimSpace(q)
	if inner, ok := strings.CutPrefix(q, "label_values("); ok {
		inner = strings.TrimSuffix(inner, ")")
		if i := strings.LastIndex(inner, ","); i >= 0 {
			return strings.TrimSpace(inner[:i])
		}
	}
	return q
}

// The alerting rules are held to the same standard.
func TestRulesUseOnlyRealMetrics(t *testing.T) {
	known := exposedMetrics(t)
	var spec monv1.PrometheusRuleSpec
	decodeFile(t, "prometheus/rules.yaml", &spec)
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				known[r.Record] = true
			}
		}
	}
	n := 0
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			node, err := promql.ParseExpr(r.Expr.String())
			if err != nil {
				t.Errorf("%s%s: %v", r.Alert, r.Record, err)
				continue
			}
			for _, vs := range parser.ExtractSelectors(node) {
				for _, m := range vs {
					if m.Name == "__name__" && !known[m.Value] {
						t.Errorf("rule %s%s queries %s, which the exporter does not expose", r.Alert, r.Record, m.Value)
					}
				}
			}
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d rules found in prometheus/rules.yaml", n)
	}
}

// Package grafana builds the shipped Grafana dashboards from Go with
// Grafana's foundation SDK, whose typed panels, queries and options make a
// dashboard Grafana accepts by construction (a panel type is the SDK's,
// never a hand-typed id). `make dashboards` writes them to
// deploy/grafana/dashboards; a test fails when the files there differ
// from what this package builds.
//
// They use the SDK's classic dashboard schema (package dashboard), which
// the SDK marks deprecated in favour of dashboardv2: v2 dashboards load
// only into Grafana 12 with its new dashboard API enabled, while the
// classic JSON is what every Grafana's file provisioning
// (deploy/grafana/provisioning) and import read.
package grafana

//lint:file-ignore SA1019 the classic schema is chosen on purpose; see the package comment.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/barchart"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/nodegraph"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Dashboard is one generated dashboard: its file name under
// deploy/grafana/dashboards and its JSON.
type Dashboard struct {
	File string
	JSON []byte
}

// Dashboards builds every shipped dashboard.
func Dashboards() ([]Dashboard, error) {
	var out []Dashboard
	for _, d := range []struct {
		file  string
		build func() *dashboard.DashboardBuilder
	}{
		{"hop-health.json", hopHealth},
		{"path-drilldown.json", pathDrilldown},
		{"topology-map.json", topologyMap},
	} {
		built, err := d.build().Build()
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", d.file, err)
		}
		// Ids in reading order, as Grafana would give them: a link to a
		// panel (viewPanel=N) stays valid across regenerations.
		for i, p := range built.Panels {
			if p.Panel != nil {
				p.Panel.Id = ptr(uint32(i + 1))
			}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(built); err != nil {
			return nil, fmt.Errorf("encoding %s: %w", d.file, err)
		}
		out = append(out, Dashboard{File: d.file, JSON: buf.Bytes()})
	}
	return out, nil
}

// The PromQL shared by the panels.
const (
	vantage = `vantage=~"$vantage"`
	// inNamespace keeps a hop series whose hop sits in the chosen
	// namespaces: kind, namespace and node live on the info series only.
	inNamespace = `and on (path, hop, vantage) hopprobe_hop_node_info{vantage=~"$vantage",namespace=~"$namespace"}`
	onePath     = `path="$path",vantage=~"$vantage"`
)

// hopQuantile reads a hop latency quantile from native histograms where
// Prometheus stores them, else from the classic buckets.
func hopQuantile(q string) string {
	return `histogram_quantile(` + q + `, sum by (path, hop) (rate(hopprobe_hop_duration_seconds{` + vantage + `}[$__rate_interval]) ` + inNamespace + `))` +
		` or histogram_quantile(` + q + `, sum by (le, path, hop) (rate(hopprobe_hop_duration_seconds_bucket{` + vantage + `}[$__rate_interval]) ` + inNamespace + `))`
}

func ptr[T any](v T) *T { return &v }

var datasource = common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${datasource}")}

// query is a Prometheus query on the dashboard's data source variable.
func query(refID, expr string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().RefId(refID).Expr(expr).Datasource(datasource)
}

// instant is a query for the last value, as a table or as series.
func instant(refID, expr, legend string, format prometheus.PromQueryFormat) *prometheus.DataqueryBuilder {
	q := query(refID, expr).Instant().Format(format)
	if legend != "" {
		q.LegendFormat(legend)
	}
	return q
}

// series is a range query drawn over time.
func series(expr, legend string) *prometheus.DataqueryBuilder {
	return query("A", expr).Range().Format(prometheus.PromQueryFormatTimeSeries).LegendFormat(legend)
}

// steps are absolute thresholds: the base colour, then value/colour pairs.
func steps(base string, more ...any) *dashboard.ThresholdsConfigBuilder {
	s := []dashboard.Threshold{{Color: base}}
	for i := 0; i+1 < len(more); i += 2 {
		s = append(s, dashboard.Threshold{Value: ptr(toFloat(more[i])), Color: more[i+1].(string)})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(s)
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case float64:
		return n
	}
	panic(fmt.Sprintf("a threshold must be a number, not %T", v))
}

func fixed(color string) *dashboard.FieldColorBuilder {
	return dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdFixed).FixedColor(color)
}

func byThresholds() *dashboard.FieldColorBuilder {
	return dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)
}

// valueText maps values to texts (and colours, where given as "text/colour").
func valueText(pairs ...string) []dashboard.ValueMapping {
	m := map[string]dashboard.ValueMappingResult{}
	for i := 0; i+1 < len(pairs); i += 2 {
		r := dashboard.ValueMappingResult{}
		text := pairs[i+1]
		if j := strings.LastIndex(text, "/"); j >= 0 {
			text, r.Color = text[:j], ptr(text[j+1:])
		}
		r.Text = ptr(text)
		m[pairs[i]] = r
	}
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: m}}}
}

func transform(id string, options map[string]any) dashboard.DataTransformerConfig {
	return dashboard.DataTransformerConfig{Id: id, Options: options}
}

// hide drops the named columns of a table.
func hide(names ...string) dashboard.DataTransformerConfig {
	ex := map[string]any{}
	for _, n := range names {
		ex[n] = true
	}
	return transform("organize", map[string]any{"excludeByName": ex})
}

// legend and tooltip are Grafana's own defaults, written out: the SDK's
// zero values would hide the legend and leave the tooltip mode empty.
func legend() *common.VizLegendOptionsBuilder {
	return common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom)
}

func tooltip() *common.VizTooltipOptionsBuilder {
	return common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeSingle).Sort(common.SortOrderNone)
}

func colouredCells() common.TableCellOptions {
	return common.TableCellOptions{TableColoredBackgroundCellOptions: &common.TableColoredBackgroundCellOptions{Type: common.TableCellDisplayModeColorBackground}}
}

// base is what every hopprobe dashboard shares: the data source
// variable, the vantage variable, the time range, the links between the
// dashboards.
func base(uid, title, description string, multiVantage bool) *dashboard.DashboardBuilder {
	v := dashboard.NewQueryVariableBuilder("vantage").Label("Vantage").
		Datasource(datasource).
		Query(dashboard.StringOrMap{Map: map[string]any{"query": "label_values(hopprobe_path_success, vantage)", "refId": "vantage"}}).
		Definition("label_values(hopprobe_path_success, vantage)").
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc)
	if multiVantage {
		v.Multi(true).IncludeAll(true).AllValue(".*")
	}
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).Description(description).Tags([]string{"hopprobe"}).
		Timezone(common.TimeZoneBrowser).Editable().Refresh("30s").Time("now-6h", "now").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus").Hide(dashboard.VariableHideDontHide)).
		WithVariable(v).
		Link(dashboard.NewDashboardLinkBuilder("hopprobe").Type(dashboard.DashboardLinkTypeDashboards).Tags([]string{"hopprobe"}).AsDropdown(true))
}

func hopHealth() *dashboard.DashboardBuilder {
	ns := dashboard.NewQueryVariableBuilder("namespace").Label("Namespace").
		Datasource(datasource).
		Query(dashboard.StringOrMap{Map: map[string]any{"query": `label_values(hopprobe_path_success{vantage=~"$vantage"}, namespace)`, "refId": "namespace"}}).
		Definition(`label_values(hopprobe_path_success{vantage=~"$vantage"}, namespace)`).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).IncludeAll(true).AllValue(".*")
	return base("hopprobe-overview", "hopprobe / Hop health",
		"Every documented path, hop by hop: which hop fails first, latency and flapping.", true).
		WithVariable(ns).
		WithPanel(table.NewPanelBuilder().Title("Broken paths: the first failing hop").Span(24).Height(7).
			Description("One row per broken path, naming the hop to look at: the first failed hop whose failure no hop below it explains. Empty when every path is healthy.").
			Datasource(datasource).
			WithTarget(instant("A", `max by (path, hop, kind, vantage, namespace, node) (hopprobe_hop_first_failing{`+vantage+`} * on (path, hop, vantage) group_left (kind, namespace, node) max by (path, hop, vantage, kind, namespace, node) (hopprobe_hop_node_info{vantage=~"$vantage",namespace=~"$namespace"})) == 1`, "", prometheus.PromQueryFormatTable)).
			WithTransformation(transform("organize", map[string]any{
				"excludeByName": map[string]any{"Time": true, "Value": true},
				"indexByName":   map[string]any{"path": 0, "hop": 1, "kind": 2, "namespace": 3, "node": 4, "vantage": 5},
			})).
			CellOptions(colouredCells()).ColorScheme(fixed("red")).ShowHeader(true)).
		WithPanel(table.NewPanelBuilder().Title("Hop health: every path a row, its hops left to right").Span(24).Height(14).
			Description("Green: the hop answered as expected in its path's last walk. Red: it failed. Columns are the hop position in the path and its name (00 dns, 01 cloudfront-tls, …); skipped hops have no cell.").
			Datasource(datasource).
			WithTarget(instant("A", `max by (path, step) (label_join(hopprobe_hop_success{`+vantage+`} * on (path, hop, vantage) group_left (position) max by (path, hop, vantage, position) (hopprobe_hop_node_info{vantage=~"$vantage",namespace=~"$namespace"}), "step", " ", "position", "hop"))`, "", prometheus.PromQueryFormatTable)).
			WithTransformation(transform("groupingToMatrix", map[string]any{"rowField": "path", "columnField": "step", "valueField": "Value", "emptyValue": "null"})).
			WithTransformation(transform("sortBy", map[string]any{"sort": []any{map[string]any{"field": `path\step`}}})).
			Thresholds(steps("red", 1, "green")).ColorScheme(byThresholds()).
			CellOptions(colouredCells()).Align(common.FieldTextAlignmentCenter).
			Mappings(valueText("0", "FAIL/red", "1", "ok/green"))).
		WithPanel(statetimeline.NewPanelBuilder().Legend(legend()).Tooltip(tooltip()).Title("First failing hop over time").Span(24).Height(8).
			Description("When each path had a first failing hop, and which.").
			Datasource(datasource).
			WithTarget(series(`max by (path, hop) (hopprobe_hop_first_failing{`+vantage+`} `+inNamespace+`) == 1`, "{{path}} → {{hop}}")).
			ColorScheme(fixed("red")).ShowValue(common.VisibilityModeNever).MergeValues(true)).
		WithPanel(timeseries.NewPanelBuilder().Legend(legend()).Tooltip(tooltip()).Title("Hop latency p50").Span(12).Height(9).
			Description("Median probe duration per hop.").
			Datasource(datasource).
			WithTarget(series(hopQuantile("0.5"), "{{path}} {{hop}}")).
			Unit("s")).
		WithPanel(timeseries.NewPanelBuilder().Legend(legend()).Tooltip(tooltip()).Title("Hop latency p99").Span(12).Height(9).
			Description("99th percentile probe duration per hop; the latency SLO is 500 ms.").
			Datasource(datasource).
			WithTarget(series(hopQuantile("0.99"), "{{path}} {{hop}}")).
			Unit("s").Thresholds(steps("green", 0.5, "red")).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLine))).
		WithPanel(table.NewPanelBuilder().Title("Success ratio per hop (flapping shows between 0 and 1)").Span(24).Height(8).
			Description("Hops that failed at least once in the time range, with the share of walks in which they answered.").
			Datasource(datasource).
			WithTarget(instant("A", `avg by (path, hop) (avg_over_time(hopprobe_hop_success{`+vantage+`}[$__range]) `+inNamespace+`) < 1`, "", prometheus.PromQueryFormatTable)).
			WithTransformation(hide("Time")).
			Unit("percentunit").Thresholds(steps("red", 0.5, "orange", 0.99, "green")).ColorScheme(byThresholds()).
			CellOptions(colouredCells())).
		WithPanel(table.NewPanelBuilder().Title("Chain: which components answered (security)").Span(12).Height(8).
			Description("Route paths whose last accepted answer did not show their documented chain of components: mismatch (e.g. CloudFront answered without passing APISIX: the gateway's plugins did not run) or alternative (another documented way in answered, such as www's NLB origin). Empty when every chain matched.").
			Datasource(datasource).
			WithTarget(instant("A", `max by (path, vantage, expected, observed, verdict) (hopprobe_path_chain_info{`+vantage+`,verdict!="matched"})`, "", prometheus.PromQueryFormatTable)).
			WithTransformation(hide("Time", "Value")).
			OverrideByName("verdict", []dashboard.DynamicConfigValue{
				{Id: "custom.cellOptions", Value: map[string]any{"type": "color-background"}},
				{Id: "mappings", Value: valueText("mismatch", "mismatch/red", "alternative", "alternative/blue", "unknown", "unknown/gray")},
			})).
		WithPanel(table.NewPanelBuilder().Title("Evidence changes in the range").Span(12).Height(8).
			Description("What a hop showed changed between two walks: a new certificate, DNS answer set, leader or role, CloudFront POP, or chain. /api/v1/paths/{id} on the prober lists each change with its time and values.").
			Datasource(datasource).
			WithTarget(instant("A", `sum by (path, hop, change) (increase(hopprobe_hop_evidence_changes_total{`+vantage+`}[$__range])) > 0`, "", prometheus.PromQueryFormatTable)).
			WithTransformation(hide("Time")).
			Decimals(0)).
		WithPanel(stat.NewPanelBuilder().Orientation(common.VizOrientationAuto).Title("NodePorts answering where they must not (security)").Span(8).Height(5).
			Description("NodePort hops documented as internal that answered from this vantage.").
			Datasource(datasource).
			WithTarget(instant("A", `sum(hopprobe_hop_exposed{`+vantage+`} `+inNamespace+`) or vector(0)`, "", prometheus.PromQueryFormatTimeSeries)).
			Thresholds(steps("green", 1, "red")).ColorScheme(byThresholds())).
		WithPanel(stat.NewPanelBuilder().Orientation(common.VizOrientationAuto).Title("Certificates: days left").Span(8).Height(5).
			Description("Earliest certificate expiry per TLS hop; the alert fires under 14 days.").
			Datasource(datasource).
			WithTarget(instant("A", `min by (hop) ((hopprobe_tls_cert_expiry_timestamp_seconds{`+vantage+`} `+inNamespace+`) - time()) / 86400`, "{{hop}}", prometheus.PromQueryFormatTimeSeries)).
			Unit("d").Decimals(1).Thresholds(steps("red", 14, "orange", 30, "green")).ColorScheme(byThresholds())).
		WithPanel(stat.NewPanelBuilder().Orientation(common.VizOrientationAuto).Title("Scheduler lag p99").Span(8).Height(5).
			Description("How late walks start against their schedule.").
			Datasource(datasource).
			WithTarget(instant("A", `histogram_quantile(0.99, sum by (le) (rate(hopprobe_walk_lag_seconds_bucket{`+vantage+`}[$__rate_interval])))`, "", prometheus.PromQueryFormatTimeSeries)).
			Unit("s"))
}

func pathDrilldown() *dashboard.DashboardBuilder {
	path := dashboard.NewQueryVariableBuilder("path").Label("Path").
		Datasource(datasource).
		Query(dashboard.StringOrMap{Map: map[string]any{"query": `label_values(hopprobe_path_success{vantage=~"$vantage"}, path)`, "refId": "path"}}).
		Definition(`label_values(hopprobe_path_success{vantage=~"$vantage"}, path)`).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc)
	return base("hopprobe-path", "hopprobe / Path drill-down",
		"One path: its verdict, the first failing hop, a phase waterfall of the last walk and its history.", true).
		WithVariable(path).
		WithPanel(stat.NewPanelBuilder().Orientation(common.VizOrientationAuto).Title("Verdict").Span(6).Height(5).
			Description("1: every probed hop answered in the last walk.").
			Datasource(datasource).
			WithTarget(instant("A", `min(hopprobe_path_success{`+onePath+`})`, "", prometheus.PromQueryFormatTimeSeries)).
			Thresholds(steps("red", 1, "green")).ColorScheme(byThresholds()).
			Mappings(valueText("0", "BROKEN", "1", "OK"))).
		WithPanel(stat.NewPanelBuilder().Orientation(common.VizOrientationAuto).Title("First failing hop").Span(10).Height(5).
			Description("The hop to look at; empty when healthy.").
			Datasource(datasource).
			WithTarget(instant("A", `max by (hop) (hopprobe_hop_first_failing{`+onePath+`}) == 1`, "{{hop}}", prometheus.PromQueryFormatTimeSeries)).
			TextMode(common.BigValueTextModeName).ColorMode(common.BigValueColorModeBackground).ColorScheme(fixed("red"))).
		WithPanel(stat.NewPanelBuilder().Orientation(common.VizOrientationAuto).Title("Walk duration").Span(8).Height(5).
			Description("Wall time of the last walk (hops are probed concurrently).").
			Datasource(datasource).
			WithTarget(instant("A", `max(hopprobe_path_duration_seconds{`+onePath+`})`, "", prometheus.PromQueryFormatTimeSeries)).
			Unit("s")).
		WithPanel(barchart.NewPanelBuilder().Tooltip(tooltip()).Title("Waterfall: phases of each hop in the last walk").Span(24).Height(10).
			Description("Each bar is a hop in path order; its segments are the probe's phases (dns, connect, tls, first_byte, transfer, handshake, auth, query, …).").
			Datasource(datasource).
			WithTarget(instant("A", `max by (step, phase) (label_join(hopprobe_hop_phase_duration_seconds{`+onePath+`} * on (path, hop, vantage) group_left (position) max by (path, hop, vantage, position) (hopprobe_hop_node_info{`+onePath+`}), "step", " ", "position", "hop"))`, "", prometheus.PromQueryFormatTable)).
			WithTransformation(transform("groupingToMatrix", map[string]any{"rowField": "step", "columnField": "phase", "valueField": "Value", "emptyValue": "zero"})).
			WithTransformation(transform("sortBy", map[string]any{"sort": []any{map[string]any{"field": `step\phase`}}})).
			Orientation(common.VizOrientationHorizontal).Stacking(common.StackingModeNormal).ShowValue(common.VisibilityModeAuto).
			XField(`step\phase`).
			Legend(legend()).
			Unit("s")).
		WithPanel(statetimeline.NewPanelBuilder().Legend(legend()).Tooltip(tooltip()).Title("Hop success history").Span(24).Height(8).
			Description("Green: answered; red: failed.").
			Datasource(datasource).
			WithTarget(series(`max by (hop) (hopprobe_hop_success{`+onePath+`})`, "{{hop}}")).
			Thresholds(steps("red", 1, "green")).ColorScheme(byThresholds()).
			Mappings(valueText("0", "fail", "1", "ok")).
			ShowValue(common.VisibilityModeNever).MergeValues(true)).
		WithPanel(timeseries.NewPanelBuilder().Legend(legend()).Tooltip(tooltip()).Title("Hop latency (mean per interval)").Span(24).Height(9).
			Description("Mean probe duration of each hop of the path.").
			Datasource(datasource).
			WithTarget(series(`sum by (hop) (rate(hopprobe_hop_duration_seconds_sum{`+onePath+`}[$__rate_interval])) / sum by (hop) (rate(hopprobe_hop_duration_seconds_count{`+onePath+`}[$__rate_interval]))`+
				` or sum by (hop) (histogram_sum(rate(hopprobe_hop_duration_seconds{`+onePath+`}[$__rate_interval]))) / sum by (hop) (histogram_count(rate(hopprobe_hop_duration_seconds{`+onePath+`}[$__rate_interval])))`, "{{hop}}")).
			Unit("s")).
		WithPanel(timeseries.NewPanelBuilder().Legend(legend()).Tooltip(tooltip()).Title("Probe outcomes").Span(24).Height(8).
			Description("Probes per hop by result (success, failure, skipped).").
			Datasource(datasource).
			WithTarget(series(`sum by (hop, result) (increase(hopprobe_hop_probes_total{`+onePath+`}[$__rate_interval]))`, "{{hop}} {{result}}")).
			DrawStyle(common.GraphDrawStyleBars).Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)))
}

func topologyMap() *dashboard.DashboardBuilder {
	components := `min by (node) (hopprobe_hop_success{` + vantage + `} * on (path, hop, vantage) group_left (node) max by (path, hop, vantage, node) (hopprobe_hop_node_info{` + vantage + `}))`
	return base("hopprobe-topology", "hopprobe / Topology map",
		"The documented flowchart (entry → load balancers → APISIX → services → data stores) coloured by live hop health.", false).
		WithPanel(nodegraph.NewPanelBuilder().Title("ALLINX topology, live").Span(24).Height(22).
			Description("Nodes are the components hops probe (DNS, CloudFront, ALBs, APISIX, namespace/service, data stores); edges are the documented links the paths walk. Green ring: every hop probing the node answered; red: at least one failed. Nodes that are only skipped from this vantage are not drawn.").
			Datasource(datasource).
			WithTarget(instant("nodes", components, "", prometheus.PromQueryFormatTable)).
			WithTarget(instant("edges", `max by (id, source, target) (label_join(hopprobe_topology_edge_info{`+vantage+`}, "id", " -> ", "source", "target"))`, "", prometheus.PromQueryFormatTable)).
			// Grafana's node graph reads fields by name: id, arc__*,
			// mainstat; source and target for the edges.
			WithTransformation(transform("organize", map[string]any{"excludeByName": map[string]any{"Time": true}, "renameByName": map[string]any{"node": "id", "Value": "arc__up"}})).
			WithTransformation(transform("calculateField", map[string]any{"mode": "binary", "binary": map[string]any{"left": "1", "operator": "-", "right": "arc__up"}, "alias": "arc__down", "replaceFields": false})).
			WithTransformation(transform("calculateField", map[string]any{"mode": "binary", "binary": map[string]any{"left": "arc__up", "operator": "*", "right": "1"}, "alias": "mainstat", "replaceFields": false})).
			OverrideByName("arc__up", []dashboard.DynamicConfigValue{{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "green"}}, {Id: "displayName", Value: "up"}}).
			OverrideByName("arc__down", []dashboard.DynamicConfigValue{{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "red"}}, {Id: "displayName", Value: "down"}}).
			OverrideByName("mainstat", []dashboard.DynamicConfigValue{{Id: "displayName", Value: "worst hop success"}}).
			Nodes(nodegraph.NewNodeOptionsBuilder().MainStatUnit("none").Arcs([]cog.Builder[nodegraph.ArcOption]{
				nodegraph.NewArcOptionBuilder().Field("arc__up").Color("green"),
				nodegraph.NewArcOptionBuilder().Field("arc__down").Color("red"),
			}))).
		WithPanel(table.NewPanelBuilder().Title("Components with a failing hop").Span(24).Height(7).
			Description("The red nodes of the map, as a list.").
			Datasource(datasource).
			WithTarget(instant("A", components+` == 0`, "", prometheus.PromQueryFormatTable)).
			WithTransformation(hide("Time", "Value"))).
		WithPanel(stat.NewPanelBuilder().Orientation(common.VizOrientationAuto).Title("Drift: differences between the documents and the live side").Span(12).Height(6).
			Description("probe serve --kube/--cluster/--apisix/--admin-url; `probe drift` lists them. 0 everywhere: the documents match.").
			Datasource(datasource).
			WithTarget(query("A", `sum by (kind) (hopprobe_drift_items)`).LegendFormat("{{kind}}")).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			ColorMode(common.BigValueColorModeBackground).GraphMode(common.BigValueGraphModeNone).TextMode(common.BigValueTextModeValueAndName).
			Thresholds(steps("green", 1, "orange"))).
		WithPanel(stat.NewPanelBuilder().Orientation(common.VizOrientationAuto).Title("Discovery: what the prober follows live").Span(12).Height(6).
			Description("probe serve --discover: Ready nodes carrying NodePort hops, and pods behind the documented Services (ready ones are probed as their own hops). Empty without --discover.").
			Datasource(datasource).
			WithTarget(query("A", `max(hopprobe_discovery_synced)`).LegendFormat("synced")).
			WithTarget(query("B", `max(hopprobe_discovery_nodes)`).LegendFormat("ready nodes")).
			WithTarget(query("C", `max by (state) (hopprobe_discovery_endpoints)`).LegendFormat("pods {{state}}")).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			ColorMode(common.BigValueColorModeNone).GraphMode(common.BigValueGraphModeNone).TextMode(common.BigValueTextModeValueAndName))
}

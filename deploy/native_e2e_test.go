package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/allinx/hopprobe/internal/peers"
)

// The shipped recording rules and the dashboards' latency queries give
// the same answer whichever way Prometheus ingests the duration
// histogram: two real Prometheus servers scrape one `probe serve`, one
// with native histograms on (it negotiates protobuf and keeps no _bucket
// series), one without (text, classic buckets). A gateway that answers
// in 600 ms is slow for every probe (ratio 1), the service behind it is
// never slow (ratio 0), on both. Bounded: about 20 s, loopback only.
func TestRulesReadClassicAndNativeHistograms(t *testing.T) {
	prom := tool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(600 * time.Millisecond):
		case <-r.Context().Done():
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer gateway.Close()
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) }))
	defer service.Close()
	topo := filepath.Join(dir, "topology.yaml")
	write(t, topo, fmt.Sprintf(`vantage: cluster
defaults: {interval: 1s, timeout: 950ms}
entries:
  - name: public
    hops:
      - {name: apisix, address: %q}
routes:
  - hosts: [api.example.test]
    path: /*
    service: ns/app:8080
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: %q}]}
`, strings.TrimPrefix(gateway.URL, "http://"), strings.TrimPrefix(service.URL, "http://")))
	listen := serveProbe(t, topo)

	rules, err := os.ReadFile("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "rules.yaml"), string(rules))
	write(t, filepath.Join(dir, "prometheus.yaml"), fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yaml]
scrape_configs:
  - job_name: hopprobe
    static_configs: [{targets: [%q]}]
`, listen))
	start := func(name string, extra ...string) string {
		addr, _ := peers.FreePort()
		args := append([]string{"--config.file", filepath.Join(dir, "prometheus.yaml"), "--storage.tsdb.path", filepath.Join(dir, name),
			"--web.listen-address", addr}, extra...)
		runServer(t, "prometheus ("+name+")", prom, args...)
		return addr
	}
	classic := start("classic")
	native := start("native", "--enable-feature=native-histograms")
	// OpenMetrics (which Prometheus asks for first without native
	// histograms) with exemplar storage: each duration bucket's exemplar
	// is the trace id of the walk whose probe fell in it.
	exemplars := start("exemplars", "--enable-feature=exemplar-storage")

	want := map[string]float64{"apisix": 1, "service": 0}
	for _, c := range []struct{ name, addr string }{{"classic", classic}, {"native", native}} {
		var got map[string]float64
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			got = promValues(c.addr, `hopprobe:hop_slow_ratio:rate5m{hop=~"apisix|service"}`, "hop")
			if len(got) == 2 && got["apisix"] == 1 && got["service"] == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: slow ratio per hop %v, want %v", c.name, got, want)
			}
		}
		// The dashboards' p99: the gateway's is at least its 600 ms.
		q := `histogram_quantile(0.99, sum by (path, hop) (rate(hopprobe_hop_duration_seconds{hop="apisix"}[1m]))) or histogram_quantile(0.99, sum by (le, path, hop) (rate(hopprobe_hop_duration_seconds_bucket{hop="apisix"}[1m])))`
		if p99 := promValues(c.addr, q, "hop")["apisix"]; p99 < 0.5 {
			t.Errorf("%s: the dashboards' p99 of the gateway reads %v s, want above 0.5", c.name, p99)
		}
	}
	var ex []promExemplar
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if ex = queryExemplars(exemplars, `hopprobe_hop_duration_seconds_bucket{hop="apisix"}`); len(ex) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Prometheus with exemplar storage read no exemplar of the gateway's duration buckets in 30 s")
		}
	}
	traceID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, e := range ex {
		if !traceID.MatchString(e.Labels["trace_id"]) || strings.Trim(e.Labels["trace_id"], "0") == "" {
			t.Errorf("an exemplar's trace_id is %q, not a W3C trace id", e.Labels["trace_id"])
		}
		if v, _ := strconv.ParseFloat(e.Value, 64); v < 0.6 {
			t.Errorf("an exemplar of the gateway (600 ms) has value %s", e.Value)
		}
	}
	// Each really ingested the way it says: native keeps no classic
	// buckets, classic no native histogram.
	if promQuery(native, `hopprobe_hop_duration_seconds_bucket`) || !promQuery(native, `histogram_count(hopprobe_hop_duration_seconds) > 0`) {
		t.Error("the native-histogram Prometheus did not ingest a native histogram (or kept classic buckets)")
	}
	if !promQuery(classic, `hopprobe_hop_duration_seconds_bucket{le="0.5"}`) {
		t.Error("the classic Prometheus has no objective bucket")
	}
}

// promValues runs an instant query and returns each result's value by
// the given label.
func promValues(listen, q, by string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range promResults(http.DefaultClient, "http://"+listen, q) {
		out[s.Metric[by]] = s.value
	}
	return out
}

// queryValue is an instant query's first value, 0 when there is none.
func queryValue(c *http.Client, base, q string) float64 {
	if rs := promResults(c, base, q); len(rs) > 0 {
		return rs[0].value
	}
	return 0
}

type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	value  float64
}

// promResults runs an instant query against the Prometheus at base.
func promResults(c *http.Client, base, q string) []promResult {
	resp, err := c.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return nil
	}
	for i := range r.Data.Result {
		if str, ok := r.Data.Result[i].Value[1].(string); ok {
			fmt.Sscan(str, &r.Data.Result[i].value)
		}
	}
	return r.Data.Result
}

// promExemplar is one exemplar as /api/v1/query_exemplars returns it.
type promExemplar struct {
	Labels map[string]string `json:"labels"`
	Value  string            `json:"value"`
}

// queryExemplars returns the exemplars of the last minute for q.
func queryExemplars(listen, q string) []promExemplar {
	now := time.Now()
	u := fmt.Sprintf("http://%s/api/v1/query_exemplars?query=%s&start=%d&end=%d", listen, url.QueryEscape(q), now.Add(-time.Minute).Unix(), now.Unix()+1)
	resp, err := http.Get(u)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var r struct {
		Data []struct {
			Exemplars []promExemplar `json:"exemplars"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return nil
	}
	var out []promExemplar
	for _, d := range r.Data {
		out = append(out, d.Exemplars...)
	}
	return out
}

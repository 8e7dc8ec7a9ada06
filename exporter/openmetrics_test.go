package exporter

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	promexemplar "github.com/prometheus/prometheus/model/exemplar"
	promlabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// omSeries is one sample of an OpenMetrics exposition as Prometheus
// reads it.
type omSeries struct {
	labels   promlabels.Labels
	value    float64
	help     string
	exemplar *promexemplar.Exemplar
}

// parseOpenMetrics reads an exposition with Prometheus' own OpenMetrics
// parser, which refuses what Prometheus would refuse (a missing # EOF, a
// counter family named with _total, a malformed exemplar).
func parseOpenMetrics(t *testing.T, b []byte) []omSeries {
	t.Helper()
	p := textparse.NewOpenMetricsParser(b, promlabels.NewSymbolTable())
	var out []omSeries
	helps := map[string]string{}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Prometheus' OpenMetrics parser: %v in\n%s", err, b)
		}
		switch e {
		case textparse.EntryHelp:
			name, help := p.Help()
			helps[string(name)] = string(help)
		case textparse.EntrySeries:
			_, _, v := p.Series()
			var s omSeries
			p.Labels(&s.labels)
			s.value = v
			name := s.labels.Get(model.MetricNameLabel)
			for _, suffix := range []string{"", "_total", "_bucket", "_sum", "_count"} {
				if h, ok := helps[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) {
					s.help = h
				}
			}
			var ex promexemplar.Exemplar
			if p.Exemplar(&ex) {
				s.exemplar = &ex
			}
			out = append(out, s)
		}
	}
}

// Asked for OpenMetrics, /metrics answers in it: counters are named as
// OpenMetrics names them, the exposition ends with # EOF, and the
// bucket of the last successful probe of a hop carries its walk's trace
// id as an exemplar, with its duration and time. Text and protobuf stay
// as they were.
func TestOpenMetricsCarriesTheWalksTraceAsAnExemplar(t *testing.T) {
	p := &targets.Path{ID: "api.example.test/*", Vantage: "cluster", Namespace: "ns", Service: "app",
		Hops: []targets.Hop{{Name: "apisix", Kind: hop.KindHTTP, Target: hop.Target{Address: "127.0.0.1:1"}}}}
	e := New([]*targets.Path{p})
	start := time.Unix(1_700_000_000, 0)
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	hr := scheduler.HopResult{Result: hop.Result{Success: true, Start: start, Duration: 37 * time.Millisecond}}
	hr.Details = map[string]string{hop.TraceIDDetail: trace}
	e.Observe(scheduler.PathResult{Path: p, Hops: []scheduler.HopResult{hr}, Success: true, FirstFailing: -1, Start: start}, status.Walk{})

	srv := httptest.NewServer(e.MetricsHandler())
	defer srv.Close()
	get := func(accept string) (string, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get("Content-Type"), string(b)
	}
	// What Prometheus sends when it may take OpenMetrics.
	ct, body := get("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	if !strings.HasPrefix(ct, "application/openmetrics-text; version=1.0.0") {
		t.Fatalf("Content-Type %q, want OpenMetrics 1.0.0", ct)
	}
	if !strings.HasSuffix(body, "# EOF\n") || strings.Count(body, "# EOF") != 1 {
		t.Errorf("the exposition does not end with exactly one # EOF")
	}
	var exemplars []omSeries
	probesTotal := false
	for _, s := range parseOpenMetrics(t, []byte(body)) {
		if s.exemplar != nil {
			exemplars = append(exemplars, s)
		}
		probesTotal = probesTotal || s.labels.Get(model.MetricNameLabel) == "hopprobe_hop_probes_total" && s.labels.Get("result") == "success" && s.value == 1
	}
	if !probesTotal {
		t.Errorf("no hopprobe_hop_probes_total{result=\"success\"} 1 in\n%s", body)
	}
	if len(exemplars) != 1 {
		t.Fatalf("%d samples with exemplars, want 1 (the bucket of the last probe):\n%s", len(exemplars), body)
	}
	s := exemplars[0]
	// The bucket the observation fell in: the first bound at or above it.
	wantLe := "+Inf"
	for _, ub := range e.layout.bounds {
		if 0.037 <= ub {
			wantLe = string(appendFloat(nil, ub))
			break
		}
	}
	if s.labels.Get(model.MetricNameLabel) != "hopprobe_hop_duration_seconds_bucket" || s.labels.Get("le") != wantLe || s.labels.Get("hop") != "apisix" {
		t.Errorf("the exemplar sits on %s, want the bucket le=%q of hop apisix", s.labels, wantLe)
	}
	if s.exemplar.Labels.Get("trace_id") != trace || s.exemplar.Value != 0.037 || !s.exemplar.HasTs || s.exemplar.Ts != start.Add(37*time.Millisecond).UnixMilli() {
		t.Errorf("exemplar %+v, want trace_id %s, 0.037 at %d", s.exemplar, trace, start.Add(37*time.Millisecond).UnixMilli())
	}
	// Plain text is unchanged: no exemplar, no # EOF.
	if ct, body := get("text/plain;version=0.0.4"); !strings.HasPrefix(ct, "text/plain") || strings.Contains(body, "# EOF") || strings.Contains(body, trace) {
		t.Errorf("text/plain: %q, with an OpenMetrics ending or exemplar", ct)
	}
}

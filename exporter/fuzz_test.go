package exporter

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// FuzzTextWriter: whatever label values a topology or a live cluster
// hands the exporter, every format it writes (text, OpenMetrics and
// protobuf) parses back to the same values.
func FuzzTextWriter(f *testing.F) {
	f.Add("api.allinpro.com/futures/ws*", `pod/a"b\c`, "line\nbreak", 1.5)
	f.Add("", "\\", "\"", math.Inf(1))
	f.Add("ünï\u00a0code", "\x7f", "}{=,", math.Copysign(0, -1))
	f.Fuzz(func(t *testing.T, path, hop, help string, v float64) {
		if !utf8.ValidString(path) || !utf8.ValidString(hop) || !utf8.ValidString(help) || math.IsNaN(v) {
			return // YAML and the API server hand over UTF-8; NaN never equals itself
		}
		ls := renderText(nil, []string{"hop", "path"}, []string{hop, path})
		var text, om, pb bytes.Buffer
		for _, s := range []sink{newTextSink(&stickyWriter{w: &text}, false), newTextSink(&stickyWriter{w: &om}, true), newProtoSink(&stickyWriter{w: &pb})} {
			s.begin("hopprobe_fuzz", help, typeGauge)
			s.sample(ls, "phase", "connect", v)
			s.end()
			if err := s.flush(); err != nil {
				t.Fatal(err)
			}
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(text.String()))
		if err != nil {
			t.Fatalf("%v in\n%s", err, text.String())
		}
		check := func(format string, m *dto.Metric) {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["hop"] != hop || got["path"] != path || got["phase"] != "connect" {
				t.Fatalf("%s: labels %v, want hop %q path %q", format, got, hop, path)
			}
			if g := m.GetGauge().GetValue(); g != v {
				t.Fatalf("%s: value %v, want %v", format, g, v)
			}
		}
		check("text", fams["hopprobe_fuzz"].GetMetric()[0])
		// OpenMetrics, read by Prometheus' own parser.
		series := parseOpenMetrics(t, om.Bytes())
		if len(series) != 1 || series[0].labels.Get("hop") != hop || series[0].labels.Get("path") != path ||
			series[0].labels.Get("phase") != "connect" || series[0].value != v || series[0].help != help {
			t.Fatalf("openmetrics: %+v, want hop %q path %q value %v help %q\n%s", series, hop, path, v, help, om.String())
		}
		var mf dto.MetricFamily
		dec := expfmt.NewDecoder(&pb, expfmt.NewFormat(expfmt.TypeProtoDelim))
		if err := dec.Decode(&mf); err != nil {
			t.Fatalf("protobuf: %v", err)
		}
		if mf.GetName() != "hopprobe_fuzz" || mf.GetHelp() != help || mf.GetType() != dto.MetricType_GAUGE {
			t.Fatalf("protobuf family %v", &mf)
		}
		check("protobuf", mf.GetMetric()[0])
	})
}

package exporter

import (
	"bufio"
	"bytes"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// FuzzTextWriter: whatever label values a topology or a live cluster
// hands the exporter, the text it writes parses back to the same values.
func FuzzTextWriter(f *testing.F) {
	f.Add("api.allinpro.com/futures/ws*", `pod/a"b\c`, "line\nbreak", 1.5)
	f.Add("", "\\", "\"", math.Inf(1))
	f.Add("ünï\u00a0code", "\x7f", "}{=,", math.Copysign(0, -1))
	f.Fuzz(func(t *testing.T, path, hop, help string, v float64) {
		if !utf8.ValidString(path) || !utf8.ValidString(hop) || !utf8.ValidString(help) || math.IsNaN(v) {
			return // YAML and the API server hand over UTF-8; NaN never equals itself
		}
		var buf bytes.Buffer
		tw := &textWriter{w: bufio.NewWriter(&buf)}
		tw.header("hopprobe_fuzz", help, "gauge")
		tw.sample("hopprobe_fuzz", []string{"hop", "path"}, []string{hop, path}, "phase", "connect", v)
		tw.w.Flush()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(buf.String()))
		if err != nil {
			t.Fatalf("%v in\n%s", err, buf.String())
		}
		m := fams["hopprobe_fuzz"].GetMetric()[0]
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if got["hop"] != hop || got["path"] != path || got["phase"] != "connect" {
			t.Fatalf("labels %v, want hop %q path %q", got, hop, path)
		}
		if g := m.GetGauge().GetValue(); g != v {
			t.Fatalf("value %v, want %v", g, v)
		}
	})
}

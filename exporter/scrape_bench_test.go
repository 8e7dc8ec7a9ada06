package exporter

import (
	"compress/gzip"
	"strings"

	"fmt"
	"io"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// benchExporter holds n one-hop HTTP paths, as cmd/scalebench builds
// them, each walked 20 times with latencies over a few octaves.
func benchExporter(n int) *Exporter {
	var paths []*targets.Path
	for i := range n {
		paths = append(paths, &targets.Path{ID: fmt.Sprintf("svc/bench/svc-%05d", i), Vantage: "cluster", Namespace: "bench",
			Service: fmt.Sprintf("svc-%05d", i), Hops: []targets.Hop{{Name: "port-8080", Node: fmt.Sprintf("bench/svc-%05d", i),
				Kind: hop.KindHTTP, Role: targets.RoleService}}})
	}
	e := New(paths)
	for w := range 20 {
		for _, p := range paths {
			d := time.Duration(200+w*37) * time.Microsecond
			e.Observe(scheduler.PathResult{Path: p, Success: true, FirstFailing: -1, Duration: d,
				Hops: []scheduler.HopResult{{Result: hop.Result{Success: true, Duration: d}}}}, status.Walk{})
		}
	}
	return e
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkScrape: one /metrics body of 1,000 hops in each format, the
// bytes it takes, and the same series through client_golang's own
// vectors and encoder (native histograms on) for comparison.
func BenchmarkScrape(b *testing.B) {
	const hops = 1000
	e := benchExporter(hops)
	for _, tc := range []struct {
		name   string
		format expfmt.Format
		gz     bool
	}{
		{"text", expfmt.NewFormat(expfmt.TypeTextPlain), false},
		{"text-gzip-bestspeed", expfmt.NewFormat(expfmt.TypeTextPlain), true},
		{"text-gzip-stateless", expfmt.NewFormat(expfmt.TypeTextPlain), true},
		{"protobuf", expfmt.NewFormat(expfmt.TypeProtoDelim), false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var size int64
			for b.Loop() {
				c := &countingWriter{}
				var w io.Writer = c
				var gz io.WriteCloser
				if tc.gz {
					if strings.HasSuffix(tc.name, "stateless") {
						gz, _ = kgzip.NewWriterLevel(c, kgzip.StatelessCompression)
					} else {
						gz, _ = gzip.NewWriterLevel(c, gzip.BestSpeed)
					}
					w = gz
				}
				if err := e.writeMetrics(w, tc.format); err != nil {
					b.Fatal(err)
				}
				if gz != nil {
					gz.Close()
				}
				size = c.n
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
	b.Run("client_golang-protobuf", func(b *testing.B) {
		reg := clientGolangMirror(e)
		var size int64
		for b.Loop() {
			mfs, err := reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			c := &countingWriter{}
			enc := expfmt.NewEncoder(c, expfmt.NewFormat(expfmt.TypeProtoDelim))
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					b.Fatal(err)
				}
			}
			size = c.n
		}
		b.ReportMetric(float64(size), "bytes/scrape")
	})
}

// clientGolangMirror holds e's hop series in client_golang vectors: the
// same families, labels and observations.
func clientGolangMirror(e *Exporter) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	success := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_hop_success"}, hopLabelNames)
	probesTotal := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hopprobe_hop_probes_total"}, append(hopLabelNames, "result"))
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_hop_node_info"}, nodeLabelNames)
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hopprobe_hop_duration_seconds", Buckets: []float64{0.5},
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: nativeMaxBuckets}, hopLabelNames)
	pathOK := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_path_success"}, pathLabelNames)
	pathDur := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_path_duration_seconds"}, walkLabelNames)
	reg.MustRegister(success, probesTotal, info, dur, pathOK, pathDur)
	for _, id := range e.order {
		ps := e.paths[id]
		p := ps.path
		pathOK.WithLabelValues(p.Namespace, p.ID, p.Service, p.Vantage).Set(1)
		pathDur.WithLabelValues(p.ID, p.Vantage).Set(ps.duration)
		for i, h := range p.Hops {
			success.WithLabelValues(h.Name, p.ID, p.Vantage).Set(1)
			probesTotal.WithLabelValues(h.Name, p.ID, p.Vantage, "success").Add(float64(ps.hops[i].counts[0]))
			info.WithLabelValues(h.Name, string(h.Kind), p.Namespace, h.Node, p.ID, fmt.Sprintf("%02d", i), p.Vantage).Set(1)
			for w := range 20 {
				dur.WithLabelValues(h.Name, p.ID, p.Vantage).Observe((time.Duration(200+w*37) * time.Microsecond).Seconds())
			}
		}
	}
	return reg
}

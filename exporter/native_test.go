package exporter

import (
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// oneHop is an exporter over a single one-hop path, fed a walk per
// duration; reference is client_golang's histogram fed the same values.
func oneHop(t *testing.T, durations []time.Duration) (*Exporter, prometheus.Histogram) {
	t.Helper()
	p := &targets.Path{ID: "svc/ns/app", Vantage: "cluster", Namespace: "ns", Service: "app",
		Hops: []targets.Hop{{Name: "port-8080", Node: "ns/app", Kind: hop.KindHTTP, Role: targets.RoleService}}}
	e := New([]*targets.Path{p})
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ref", Buckets: []float64{0.5},
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: nativeMaxBuckets})
	for _, d := range durations {
		e.Observe(scheduler.PathResult{Path: p, Success: true, FirstFailing: -1,
			Hops: []scheduler.HopResult{{Result: hop.Result{Success: true, Duration: d}}}}, status.Walk{})
		ref.Observe(d.Seconds())
	}
	return e, ref
}

func protoFamilies(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	out := map[string]*dto.MetricFamily{}
	dec := expfmt.NewDecoder(r, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("decoding the protobuf scrape: %v", err)
		}
		if out[mf.GetName()] != nil {
			t.Fatalf("family %s written twice", mf.GetName())
		}
		out[mf.GetName()] = mf
	}
}

// sameHistogram compares the exporter's encoding with client_golang's:
// count, classic buckets, schema, zero bucket, spans and deltas exactly;
// the sum to a nanosecond per observation (kept as integer nanoseconds
// here, as float seconds there).
func sameHistogram(t *testing.T, got, want *dto.Histogram) {
	t.Helper()
	if got.GetSampleCount() != want.GetSampleCount() {
		t.Fatalf("count %d, want %d", got.GetSampleCount(), want.GetSampleCount())
	}
	if d := math.Abs(got.GetSampleSum() - want.GetSampleSum()); d > 1e-9*float64(want.GetSampleCount()) {
		t.Fatalf("sum %v, want %v", got.GetSampleSum(), want.GetSampleSum())
	}
	if len(got.GetBucket()) != len(want.GetBucket()) || got.GetBucket()[0].GetCumulativeCount() != want.GetBucket()[0].GetCumulativeCount() ||
		got.GetBucket()[0].GetUpperBound() != 0.5 {
		t.Fatalf("classic buckets %v, want %v", got.GetBucket(), want.GetBucket())
	}
	if got.GetSchema() != want.GetSchema() || got.GetZeroThreshold() != want.GetZeroThreshold() || got.GetZeroCount() != want.GetZeroCount() {
		t.Fatalf("schema %d zero %v/%d, want %d %v/%d", got.GetSchema(), got.GetZeroThreshold(), got.GetZeroCount(),
			want.GetSchema(), want.GetZeroThreshold(), want.GetZeroCount())
	}
	gs, ws := got.GetPositiveSpan(), want.GetPositiveSpan()
	if len(gs) != len(ws) {
		t.Fatalf("%d spans, want %d: %v vs %v", len(gs), len(ws), gs, ws)
	}
	for i := range gs {
		if gs[i].GetOffset() != ws[i].GetOffset() || gs[i].GetLength() != ws[i].GetLength() {
			t.Fatalf("span %d: %v, want %v", i, gs[i], ws[i])
		}
	}
	gd, wd := got.GetPositiveDelta(), want.GetPositiveDelta()
	if len(gd) != len(wd) {
		t.Fatalf("%d deltas, want %d", len(gd), len(wd))
	}
	for i := range gd {
		if gd[i] != wd[i] {
			t.Fatalf("delta %d: %d, want %d", i, gd[i], wd[i])
		}
	}
}

func scrapeProto(t *testing.T, e *Exporter) map[string]*dto.MetricFamily {
	t.Helper()
	var b bytes.Buffer
	if err := e.writeMetrics(&b, expfmt.NewFormat(expfmt.TypeProtoDelim)); err != nil {
		t.Fatal(err)
	}
	return protoFamilies(t, &b)
}

// The native histogram written here is, bucket for bucket, the one
// client_golang would write for the same observations: latencies across
// five octaves, exact bucket bounds (0.5 s, 1 s, 0.25 s) among them.
func TestNativeHistogramMatchesClientGolang(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ds := []time.Duration{500 * time.Millisecond, time.Second, 250 * time.Millisecond, time.Nanosecond, 3 * time.Second}
	for range 2000 {
		ds = append(ds, time.Duration(math.Exp(rng.Float64()*math.Log(2000))*float64(time.Millisecond)/10))
	}
	e, ref := oneHop(t, ds)
	var want dto.Metric
	if err := ref.Write(&want); err != nil {
		t.Fatal(err)
	}
	fams := scrapeProto(t, e)
	h := fams["hopprobe_hop_duration_seconds"]
	if h.GetType() != dto.MetricType_HISTOGRAM || len(h.GetMetric()) != 1 {
		t.Fatalf("duration family: %v", h)
	}
	sameHistogram(t, h.GetMetric()[0].GetHistogram(), want.GetHistogram())
	if want.GetHistogram().GetSchema() != nativeSchema {
		t.Fatalf("the reference halved its resolution (schema %d); this case is meant to stay at %d", want.GetHistogram().GetSchema(), nativeSchema)
	}
}

// Latencies spread over twelve decades exceed 160 buckets: the
// resolution halves, as client_golang's does, and the bucket count stays
// bounded.
func TestNativeHistogramHalvesItsResolutionLikeClientGolang(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var ds []time.Duration
	for range 3000 {
		ds = append(ds, time.Duration(math.Exp(rng.Float64()*math.Log(1e12))))
	}
	e, ref := oneHop(t, ds)
	var want dto.Metric
	if err := ref.Write(&want); err != nil {
		t.Fatal(err)
	}
	got := scrapeProto(t, e)["hopprobe_hop_duration_seconds"].GetMetric()[0].GetHistogram()
	if got.GetSchema() >= nativeSchema {
		t.Fatalf("schema %d: the resolution never halved", got.GetSchema())
	}
	sameHistogram(t, got, want.GetHistogram())
	n := 0
	for _, s := range got.GetPositiveSpan() {
		n += int(s.GetLength())
	}
	if n > nativeMaxBuckets {
		t.Fatalf("%d buckets kept, at most %d", n, nativeMaxBuckets)
	}
}

// A scraper that asks for protobuf and gzip gets both, with the native
// histogram and the classic objective bucket in one message; one that
// asks for neither gets plain text without native buckets.
func TestScrapeNegotiatesProtobufAndGzip(t *testing.T) {
	e, _ := oneHop(t, []time.Duration{time.Millisecond, 600 * time.Millisecond})
	srv := httptest.NewServer(e.MetricsHandler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3")
	req.Header.Set("Accept-Encoding", "gzip")
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	if ct := resp.Header.Get("Content-Type"); expfmt.ResponseFormat(resp.Header).FormatType() != expfmt.TypeProtoDelim {
		t.Fatalf("Content-Type %q, want the delimited protobuf format", ct)
	}
	gz, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	fams := protoFamilies(t, gz)
	h := fams["hopprobe_hop_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 2 || len(h.GetPositiveSpan()) == 0 || h.GetBucket()[0].GetCumulativeCount() != 1 {
		t.Fatalf("histogram %v: want 2 probes, native spans and 1 in the 0.5 s bucket", h)
	}
	if fams["go_goroutines"] == nil || fams["hopprobe_hop_success"] == nil {
		t.Fatal("the process and hop families are missing from the protobuf scrape")
	}

	resp2, err := http.Get(srv.URL + "/metrics") // Go's client asks for gzip and undoes it
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	body, _ := io.ReadAll(resp2.Body)
	if expfmt.ResponseFormat(resp2.Header).FormatType() != expfmt.TypeTextPlain || !bytes.Contains(body, []byte(`hopprobe_hop_duration_seconds_bucket{hop="port-8080",path="svc/ns/app",vantage="cluster",le="0.5"} 1`)) {
		t.Fatalf("text scrape (%s):\n%s", resp2.Header.Get("Content-Type"), body)
	}
}

// A new bucket layout on reload starts the histograms again (old counts
// cannot be split into new buckets) but keeps every other series; the
// same layout changes nothing.
func TestSetMetricsRebuildsOnlyWhatTheLayoutChanges(t *testing.T) {
	e, _ := oneHop(t, []time.Duration{time.Millisecond, 2 * time.Millisecond})
	count := func() (uint64, uint64, int) {
		f := scrapeProto(t, e)
		h := f["hopprobe_hop_duration_seconds"]
		var n uint64
		if h != nil {
			n = h.GetMetric()[0].GetHistogram().GetSampleCount()
		}
		buckets := 0
		if h != nil {
			buckets = len(h.GetMetric()[0].GetHistogram().GetBucket())
		}
		return n, uint64(f["hopprobe_hop_probes_total"].GetMetric()[0].GetCounter().GetValue()), buckets
	}
	e.SetMetrics(config.Metrics{})
	if n, probes, _ := count(); n != 2 || probes != 2 {
		t.Fatalf("the default layout again: %d in the histogram, %d probes; want both kept at 2", n, probes)
	}
	e.SetMetrics(config.Metrics{DurationBuckets: []float64{0.1, 0.5, 1}})
	if n, probes, _ := count(); n != 0 || probes != 2 {
		t.Fatalf("new buckets: %d in the histogram (want it started again), %d probes (want 2 kept)", n, probes)
	}
	e.Observe(scheduler.PathResult{Path: e.paths["svc/ns/app"].path, Success: true, FirstFailing: -1,
		Hops: []scheduler.HopResult{{Result: hop.Result{Success: true, Duration: time.Millisecond}}}}, status.Walk{})
	if n, _, buckets := count(); n != 1 || buckets != 3 {
		t.Fatalf("after a walk in the new layout: %d observations in %d classic buckets, want 1 in 3", n, buckets)
	}
}

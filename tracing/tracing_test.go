package tracing_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
	"github.com/allinx/hopprobe/tracing"
)

// receiver runs the OpenTelemetry Collector's own OTLP receiver in
// process on loopback, and returns its base URL and what it received.
func receiver(t *testing.T) (string, *consumertest.TracesSink) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	// HTTP only (the exporter's protocol), on the port picked above.
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = addr
	cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()
	sink := new(consumertest.TracesSink)
	r, err := f.CreateTraces(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	return "http://" + addr, sink
}

// A walk of a path through a gateway to a service, exported to a real
// OTLP receiver: the walk is the root span, each probed hop a child with
// its evidence, each phase a span under its hop; the request each hop
// sent names that hop's span in its traceparent; no secret is in any
// attribute.
func TestWalksAreExportedAsTraces(t *testing.T) {
	endpoint, sink := receiver(t)
	seen := make(chan string, 8)
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Traceparent")
		w.Header().Set("Server", "APISIX/3.9.0")
		w.Write([]byte("ok"))
	}))
	defer peer.Close()
	const secret = "s3cret-Redis-pass"
	t.Setenv("HOPPROBE_TRACE_TEST_PW", secret)
	store := &config.Store{Name: "cache", Kind: "redis", Address: "127.0.0.1:1", Password: &config.SecretRef{Env: "HOPPROBE_TRACE_TEST_PW"}}
	p := &targets.Path{ID: "api.example.test/*", Kind: targets.PathRoute, Vantage: "cluster", Namespace: "ns", Service: "app", Interval: time.Second,
		Hops: []targets.Hop{
			{Name: "apisix", Node: "apisix", Kind: hop.KindHTTP, Timeout: time.Second, Target: hop.Target{Address: strings.TrimPrefix(peer.URL, "http://"), Host: "api.example.test"}},
			{Name: "service", Node: "ns/app", Kind: hop.KindHTTP, Timeout: time.Second, Target: hop.Target{Address: strings.TrimPrefix(peer.URL, "http://"), Host: "api.example.test", Path: "/health"}},
			{Name: "cache", Node: "cache", Kind: hop.KindRedis, Timeout: time.Second, Target: hop.Target{Store: store}},
		}}
	tp, err := tracing.Start(endpoint, "test", "cluster")
	if err != nil {
		t.Fatal(err)
	}
	w := scheduler.NewWalker(4, probes.Run)
	w.SetTracer(tp.Tracer())
	res := w.Walk(context.Background(), p)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatalf("flushing to the receiver: %v", err)
	}
	if res.Hops[2].Success {
		t.Fatal("the Redis hop on a closed port succeeded")
	}
	spans := map[string]ptrace.Span{}
	var all []ptrace.Span
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && sink.SpanCount() < 7; time.Sleep(50 * time.Millisecond) {
	}
	for _, td := range sink.AllTraces() {
		for i := range td.ResourceSpans().Len() {
			rs := td.ResourceSpans().At(i)
			if v, _ := rs.Resource().Attributes().Get("service.name"); v.Str() != "hopprobe" {
				t.Errorf("resource service.name = %q", v.Str())
			}
			for j := range rs.ScopeSpans().Len() {
				ss := rs.ScopeSpans().At(j).Spans()
				for k := range ss.Len() {
					spans[ss.At(k).Name()] = ss.At(k)
					all = append(all, ss.At(k))
				}
			}
		}
	}
	root, ok := spans["walk api.example.test/*"]
	if !ok {
		t.Fatalf("no walk span among %d spans: %v", len(all), keys(spans))
	}
	if !root.ParentSpanID().IsEmpty() {
		t.Error("the walk span has a parent")
	}
	if v, _ := root.Attributes().Get("hopprobe.first_failing_hop"); v.Str() != "cache" {
		t.Errorf("walk: first failing hop attribute %q", v.Str())
	}
	for _, hop := range []string{"apisix", "service", "cache"} {
		s, ok := spans["hop "+hop]
		if !ok {
			t.Fatalf("no span for hop %s: %v", hop, keys(spans))
		}
		if s.ParentSpanID() != root.SpanID() || s.TraceID() != root.TraceID() {
			t.Errorf("hop %s is not a child of the walk", hop)
		}
		if v, _ := s.Attributes().Get("hopprobe.verdict"); (hop == "cache") != (v.Str() == "failed") {
			t.Errorf("hop %s verdict attribute %q", hop, v.Str())
		}
	}
	if v, _ := spans["hop apisix"].Attributes().Get("hopprobe.evidence.header.server"); v.Str() != "APISIX/3.9.0" {
		t.Errorf("the apisix hop's evidence attribute: %q", v.Str())
	}
	// The requests named their hops' spans.
	want := map[string]bool{}
	for _, hop := range []string{"hop apisix", "hop service"} {
		s := spans[hop]
		want["00-"+s.TraceID().String()+"-"+s.SpanID().String()+"-01"] = true
	}
	for range 2 {
		if tp := <-seen; !want[tp] {
			t.Errorf("a request carried traceparent %s, not its hop's span (%v)", tp, want)
		}
	}
	// Phases sit under their hop.
	phases := 0
	for _, s := range all {
		if s.ParentSpanID() == spans["hop apisix"].SpanID() {
			phases++
		}
	}
	if phases < 2 {
		t.Errorf("the apisix hop has %d phase spans, want connect, first_byte, …", phases)
	}
	for _, s := range all {
		for k, v := range s.Attributes().All() {
			if strings.Contains(v.AsString(), secret) {
				t.Errorf("span %s attribute %s holds the password", s.Name(), k)
			}
		}
	}
}

func TestStartRefusesABadEndpoint(t *testing.T) {
	for _, e := range []string{"collector:4318", "ftp://x", "http://user:pw@collector:4318"} {
		if _, err := tracing.Start(e, "test", "cluster"); err == nil {
			t.Errorf("Start(%q) accepted", e)
		} else if strings.Contains(err.Error(), "pw@") {
			t.Errorf("the error shows the credentials: %v", err)
		}
	}
}

func keys(m map[string]ptrace.Span) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

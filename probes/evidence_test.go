package probes_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/trace"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/probes"
)

var traceparentRe = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`)

// Every HTTP and WebSocket probe request carries a W3C traceparent and an
// X-Request-Id the backends can log (the trace id), the hop's evidence
// names them, and the identifying headers and the certificate of the
// answer are kept, each bounded like any text from a peer.
func TestProbeRequestsCarryTraceIDsAndKeepEvidence(t *testing.T) {
	got := make(chan http.Header, 4)
	up := websocket.Upgrader{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("Server", "APISIX/3.9.0")
		w.Header().Add("Via", "1.1 abc.cloudfront.net (CloudFront)")
		w.Header().Set("X-Amz-Cf-Pop", strings.Repeat("P", 4096)) // a hostile peer's header: bounded
		w.Header().Set("X-Secret-Internal", "not kept")
		if websocket.IsWebSocketUpgrade(r) {
			// gorilla writes the 101 itself, with only the headers given.
			c, err := up.Upgrade(w, r, w.Header())
			if err == nil {
				c.Close()
			}
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	for _, kind := range []hop.Kind{hop.KindHTTP, hop.KindWebSocket} {
		r := run(t, kind, hop.Target{Address: addr(srv), Host: "example.com", Scheme: "https", TLS: caFile(t, srv)}, 2*time.Second)
		wantOK(t, r)
		h := <-got
		m := traceparentRe.FindStringSubmatch(h.Get("Traceparent"))
		if m == nil {
			t.Fatalf("%s: traceparent %q is not W3C", kind, h.Get("Traceparent"))
		}
		if h.Get("X-Request-Id") != m[1] || r.Details["trace_id"] != m[1] {
			t.Errorf("%s: X-Request-Id %q, evidence trace_id %q, want the trace id %s", kind, h.Get("X-Request-Id"), r.Details["trace_id"], m[1])
		}
		if r.Details["header.server"] != "APISIX/3.9.0" || !strings.Contains(r.Details["header.via"], "(CloudFront)") {
			t.Errorf("%s: identifying headers not kept: %v", kind, r.Details)
		}
		if n := len(r.Details["header.x-amz-cf-pop"]); n == 0 || n > hop.MaxDetailBytes {
			t.Errorf("%s: a 4 KiB header was kept as %d bytes, want 1..%d", kind, n, hop.MaxDetailBytes)
		}
		if _, kept := r.Details["header.x-secret-internal"]; kept {
			t.Errorf("%s: a header no fingerprint names was kept", kind)
		}
		if r.Details["cert.sha256"] == "" || !strings.Contains(r.Details["cert.sans"], "example.com") || r.Details["remote"] != addr(srv) {
			t.Errorf("%s: certificate or address evidence missing: %v", kind, r.Details)
		}
	}
	// A walk's trace: the probe carries its span, not a fresh one.
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	r := probes.Run(ctx, hop.KindHTTP, &hop.Target{Address: addr(srv), Host: "example.com", Scheme: "https", TLS: caFile(t, srv)}, 2*time.Second)
	wantOK(t, r)
	if h := <-got; h.Get("Traceparent") != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("traceparent %q does not carry the walk's span", h.Get("Traceparent"))
	}
	// A topology's own fingerprint header is kept too.
	r = run(t, hop.KindHTTP, hop.Target{Address: addr(srv), Host: "example.com", Scheme: "https", TLS: caFile(t, srv), EvidenceHeaders: []string{"X-Secret-Internal"}}, 2*time.Second)
	<-got
	if r.Details["header.x-secret-internal"] != "not kept" {
		t.Errorf("the fingerprint's header was not kept: %v", r.Details)
	}
}

package probes_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/probes"
)

// benchProbe runs one probe per iteration and reports probes per second;
// -benchmem gives allocations per probe.
func benchProbe(b *testing.B, kind probes.Kind, tg probes.Target) {
	b.Helper()
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		r := probes.Run(context.Background(), kind, &tg, 2*time.Second)
		if !r.Success {
			b.Fatalf("probe failed: %s", r.Error)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "probes/s")
}

func BenchmarkHTTPProbe(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	benchProbe(b, probes.KindHTTP, probes.Target{Address: addr(srv), Host: "api.example.test", Scheme: "http", Path: "/health",
		Expect: config.Expect{JSON: map[string]string{"status": "ok"}}})
}

func BenchmarkWebSocketProbe(b *testing.B) {
	srv := wsServer(nil, `{"op":"pong"}`, false)
	defer srv.Close()
	benchProbe(b, probes.KindWebSocket, probes.Target{Address: addr(srv), Host: "api.example.test", Scheme: "http", Path: "/ws",
		Expect: config.Expect{Send: `{"op":"ping"}`, Reply: "pong"}})
}

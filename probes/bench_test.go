package probes_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/probes"
)

// benchProbe runs one probe per iteration and reports probes per second;
// -benchmem gives allocations per probe.
func benchProbe(b *testing.B, kind hop.Kind, tg hop.Target) {
	b.Helper()
	// One untimed probe first: a freshly started peer (etcd electing its
	// leader) must not be billed to the prober.
	if r := probes.Run(context.Background(), kind, &tg, 5*time.Second); !r.Success {
		b.Fatalf("warm-up probe failed: %s", r.Error)
	}
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
	benchProbe(b, hop.KindHTTP, hop.Target{Address: addr(srv), Host: "api.example.test", Scheme: "http", Path: "/health",
		Expect: config.Expect{JSON: map[string]string{"status": "ok"}}})
}

func BenchmarkWebSocketProbe(b *testing.B) {
	srv := wsServer(nil, `{"op":"pong"}`, false)
	defer srv.Close()
	benchProbe(b, hop.KindWebSocket, hop.Target{Address: addr(srv), Host: "api.example.test", Scheme: "http", Path: "/ws",
		Expect: config.Expect{Send: `{"op":"ping"}`, Reply: "pong"}})
}

func BenchmarkRedisProbe(b *testing.B) {
	s := need(b, func() (*peers.Server, error) { return peers.Redis("", storePW, "") })
	benchProbe(b, hop.KindRedis, storeTarget(b, config.Store{Name: "r", Kind: "redis", Address: s.Addr}))
}

func BenchmarkPostgresProbe(b *testing.B) {
	s := need(b, func() (*peers.Server, error) { return peers.Postgres("", "hopprobe", storePW) })
	benchProbe(b, hop.KindPostgres, storeTarget(b, config.Store{Name: "p", Kind: "postgres", Address: s.Addr, Username: "hopprobe",
		Postgres: &config.PostgresOpts{SSLMode: "disable"}}))
}

func BenchmarkKafkaProbe(b *testing.B) {
	s := need(b, func() (*peers.Server, error) { return peers.Kafka("", "orders") })
	st := config.Store{Name: "k", Kind: "kafka", Address: s.Addr, Kafka: &config.KafkaOpts{Topics: []string{"orders"}}}
	benchProbe(b, hop.KindKafka, hop.Target{Address: s.Addr, Store: &st})
}

func BenchmarkEtcdProbe(b *testing.B) {
	s := need(b, func() (*peers.Server, error) { return peers.Etcd("") })
	st := config.Store{Name: "e", Kind: "etcd", Address: s.Addr}
	benchProbe(b, hop.KindEtcd, hop.Target{Address: s.Addr, Store: &st})
}
